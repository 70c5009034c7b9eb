"""Tests for storyboard.edit.conform and storyboard.edit.stitch, on real clips rendered with ffmpeg."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from storyboard.edit.conform import (
    Profile,
    build_conform_command,
    build_copy_command,
    conform_key,
    copy_blocker,
    frames_for,
    piece_bounds,
    read_clip,
)
from storyboard.job import RenderContext, RenderJob
from storyboard.providers.animatic import AnimaticProvider
from storyboard.errors import StitchError
from storyboard.edit.stitch import (
    StitchStats,
    Transition,
    build_concat_command,
    build_concat_list,
    build_pcm_command,
    stitch,
    window_key,
)

PROFILE = Profile(width=320, height=180, fps=24)
FRAME = 1 / PROFILE.fps


class DirMemo:
    """A Memo in a folder; files are stored without a suffix, as the real cache stores objects."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.puts: list[str] = []

    def _path(self, name: str) -> Path:
        return self.root / hashlib.sha256(name.encode()).hexdigest()

    def memo_get(self, name: str) -> Path | None:
        path = self._path(name)
        return path if path.is_file() else None

    def memo_put(self, name: str, produced: Path) -> Path:
        if not name.startswith("clip-facts-"):  # segments only: a clip's facts are not media
            self.puts.append(name)
        path = self._path(name)
        os.replace(produced, path)
        return path

    def segments(self) -> list[Path]:
        """The media files held (not the clips' facts)."""
        return [self._path(name) for name in self.puts]


def render(path: Path, video: str, audio: str | None, *x264: str) -> tuple[str, Path]:
    argv = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", video]
    if audio:
        argv += ["-f", "lavfi", "-i", audio, "-c:a", "aac", "-shortest"]
    subprocess.run([*argv, "-c:v", "libx264", "-preset", "ultrafast", *x264, "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Four clips unlike each other and unlike the profile, plus one to swap in: name -> clip."""
    folder = tmp_path_factory.mktemp("clips")
    return {
        "a": render(folder / "a.mp4", "testsrc2=s=320x180:r=24:d=2", "sine=f=440:r=48000:d=2"),
        "tall": render(folder / "tall.mp4", "testsrc2=s=180x320:r=30:d=2.5",
                       "sine=f=660:r=44100:d=2.5,pan=mono|c0=c0"),
        "mute": render(folder / "mute.mp4", "testsrc2=s=320x180:r=25:d=2", None),
        "b": render(folder / "b.mp4", "testsrc2=s=256x144:r=24:d=3", "sine=f=880:r=48000:d=3"),
        "new": render(folder / "new.mp4", "smptebars=s=320x180:r=24:d=2", "sine=f=330:r=48000:d=2"),
    }


SECONDS = {"a": 2.0, "tall": 2.5, "mute": 2.0, "b": 3.0, "new": 2.0}
ORDER = ["a", "tall", "mute", "b"]


@pytest.fixture(scope="module")
def same(tmp_path_factory):
    """Clips from one encoder in the profile's format, as a provider returns them: name -> clip.

    ``one`` to ``three`` can be copied into a film of PROFILE; ``bframes`` and ``refs`` are
    the same size and rate but have B-frames or other parameter sets.
    """
    folder = tmp_path_factory.mktemp("same")
    return {
        "one": render(folder / "one.mp4", "testsrc2=s=320x180:r=24:d=2", "sine=f=440:r=48000:d=2"),
        "two": render(folder / "two.mp4", "testsrc2=s=320x180:r=24:d=1.5,negate", None),
        "three": render(folder / "three.mp4", "testsrc2=s=320x180:r=24:d=2.5,hue=h=90",
                        "sine=f=660:r=44100:d=2.5,pan=mono|c0=c0"),
        "bframes": render(folder / "bframes.mp4", "testsrc2=s=320x180:r=24:d=2",
                          "sine=f=440:r=48000:d=2", "-x264-params", "bframes=2"),
        "refs": render(folder / "refs.mp4", "testsrc2=s=320x180:r=24:d=2",
                       "sine=f=440:r=48000:d=2", "-x264-params", "ref=3"),
    }


SAME = ["one", "two", "three"]
SAME_SECONDS = {"one": 2.0, "two": 1.5, "three": 2.5}


def film_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        facts = {
            "video_codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name,
            "size": (video.codec_context.width, video.codec_context.height),
            "pix_fmt": video.codec_context.pix_fmt,
            "video_seconds": float(video.duration * video.time_base),
            "audio_seconds": float(audio.duration * audio.time_base),
        }
        facts["frames"] = sum(1 for _ in container.decode(video=0))
    return facts


def audio_samples(path: Path) -> tuple[np.ndarray, int]:
    """The film's audio as mono float samples, and the sample index of the film's time 0."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    first = frames[0]
    start = -round(first.pts * first.time_base * first.sample_rate)
    return np.concatenate([f.to_ndarray().mean(axis=0) for f in frames]), start


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_cut_film_is_exactly_the_clips_back_to_back(clips, tmp_path):
    out = tmp_path / "film.mp4"
    stats = stitch([clips[n] for n in ORDER], out, profile=PROFILE, transition=Transition(),
                   memo=DirMemo(tmp_path / "memo"))
    facts = film_facts(out)
    expected = sum(frames_for(SECONDS[n], PROFILE.fps) for n in ORDER)
    assert facts["frames"] == expected
    assert facts["video_seconds"] == pytest.approx(expected * FRAME, abs=FRAME)
    assert facts["audio_seconds"] == pytest.approx(facts["video_seconds"], abs=FRAME)
    assert (facts["video_codec"], facts["audio_codec"]) == ("h264", "aac")
    assert (facts["size"], facts["pix_fmt"]) == ((320, 180), "yuv420p")
    assert stats == StitchStats(conforms_encoded=3, conforms_copied=1, segments=4, parts_encoded=3,
                                frames_copied=48, frames_encoded=180, conformed=(
        "clip 2 (tall.mp4): it is 180x320, not 320x180",
        "clip 3 (mute.mp4): it is not exactly 24 frames a second from time 0",
        "clip 4 (b.mp4): it is 256x144, not 320x180",
    ))
    umask_mode = tmp_path / "touched"
    umask_mode.touch()
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(umask_mode.stat().st_mode)


def test_cut_film_keeps_sound_on_its_picture(clips, tmp_path):
    out = tmp_path / "film.mp4"
    stitch([clips[n] for n in ORDER], out, profile=PROFILE, transition=Transition(),
           memo=DirMemo(tmp_path / "memo"))
    samples, zero = audio_samples(out)
    rate, ms = PROFILE.sample_rate, PROFILE.sample_rate // 1000
    mute_start = zero + round((SECONDS["a"] + SECONDS["tall"]) * rate)
    mute_end = mute_start + round(SECONDS["mute"] * rate)
    assert rms(samples[mute_start - 15 * ms : mute_start - 5 * ms]) > 0.05
    assert rms(samples[mute_start + 5 * ms : mute_end - 5 * ms]) < 0.005
    assert rms(samples[mute_end + 5 * ms : mute_end + 15 * ms]) > 0.05


def test_crossfade_film_is_shorter_by_each_overlap(clips, tmp_path):
    out = tmp_path / "film.mp4"
    stats = stitch([clips[n] for n in ORDER], out, profile=PROFILE,
                   transition=Transition("crossfade", 0.5), memo=DirMemo(tmp_path / "memo"))
    facts = film_facts(out)
    expected = sum(frames_for(SECONDS[n], PROFILE.fps) for n in ORDER) - 3 * 12
    assert facts["frames"] == expected
    assert facts["video_seconds"] == pytest.approx(sum(SECONDS[n] for n in ORDER) - 3 * 0.5, abs=FRAME)
    assert facts["audio_seconds"] == pytest.approx(facts["video_seconds"], abs=FRAME)
    # the first clip has no head and the last no tail: body, then a window and a body per join
    assert stats == StitchStats(conforms_encoded=4, windows_encoded=3, segments=1 + 2 * 3,
                                parts_encoded=2 + 3 + 3 + 2, frames_encoded=expected)


def test_every_segment_has_the_same_h264_parameter_sets(clips, tmp_path):
    memo = DirMemo(tmp_path / "memo")
    stitch([clips[n] for n in ORDER], tmp_path / "film.mp4", profile=PROFILE,
           transition=Transition("fade", 0.25), memo=memo)
    extradata = set()
    for path in memo.segments():
        with av.open(str(path)) as container:
            extradata.add(bytes(container.streams.video[0].codec_context.extradata))
    assert len(extradata) == 1


def test_fade_dips_to_black_between_clips(clips, tmp_path):
    out = tmp_path / "film.mp4"
    transition = Transition("fade", 0.5)
    stitch([clips["a"], clips["b"]], out, profile=PROFILE, transition=transition,
           memo=DirMemo(tmp_path / "memo"))
    with av.open(str(out)) as container:
        luma = [f.to_ndarray(format="gray").mean() for f in container.decode(video=0)]
    middle = frames_for(SECONDS["a"], PROFILE.fps) - 12 + 6
    assert len(luma) == frames_for(SECONDS["a"] + SECONDS["b"] - 0.5, PROFILE.fps)
    assert luma[middle] < 20 < luma[middle - 10] and luma[middle + 10] > 20


def test_replacing_one_clip_reencodes_only_what_touches_it(clips, tmp_path):
    memo = DirMemo(tmp_path / "memo")
    fade = Transition("crossfade", 0.5)
    first = stitch([clips[n] for n in ORDER], tmp_path / "one.mp4", profile=PROFILE,
                   transition=fade, memo=memo)
    swapped = ["a", "new", "mute", "b"]
    steps: list[str] = []
    second = stitch([clips[n] for n in swapped], tmp_path / "two.mp4", profile=PROFILE,
                    transition=fade, memo=memo, on_step=steps.append)
    again = stitch([clips[n] for n in ORDER], tmp_path / "three.mp4", profile=PROFILE,
                   transition=fade, memo=memo)
    assert first == StitchStats(conforms_encoded=4, windows_encoded=3, segments=7, parts_encoded=10,
                                frames_encoded=192)
    assert second == StitchStats(conforms_encoded=1, conforms_reused=3, windows_encoded=2,
                                 windows_reused=1, segments=7, parts_encoded=3, parts_reused=7,
                                 frames_encoded=180)
    assert again == StitchStats(conforms_reused=4, windows_reused=3, segments=7, parts_reused=10,
                                frames_encoded=192)
    # a (the one clip of the profile's format) sets the film's H.264 setting, which new lacks
    assert steps == ["clip 2 (new.mp4): no smart cut: its H.264 parameter sets differ from clip "
                     "1's", "conform clip 2/4 (new.mp4)", "crossfade window 1/3 (clip 1 -> clip 2)",
                     "crossfade window 2/3 (clip 2 -> clip 3)", "join 7 segments into two.mp4"]
    assert (tmp_path / "one.mp4").read_bytes() == (tmp_path / "three.mp4").read_bytes()


def test_a_clip_used_twice_is_conformed_once(clips, tmp_path):
    stats = stitch([clips["a"], clips["b"], clips["a"]], tmp_path / "film.mp4", profile=PROFILE,
                   transition=Transition(), memo=DirMemo(tmp_path / "memo"))
    assert stats == StitchStats(conforms_encoded=1, conforms_copied=1, conforms_reused=1, segments=3,
                                conformed=("clip 2 (b.mp4): it is 256x144, not 320x180",),
                                parts_encoded=1, frames_copied=96, frames_encoded=72)


def test_two_clean_stitches_give_identical_bytes(clips, tmp_path):
    films = []
    for run in ("x", "y"):
        out = tmp_path / run / "film.mp4"
        stitch([clips[n] for n in ORDER], out, profile=PROFILE, transition=Transition("crossfade", 0.3),
               memo=DirMemo(tmp_path / run / "memo"))
        films.append(out.read_bytes())
    assert films[0] == films[1]


def test_normalized_audio_keeps_the_film_length(clips, tmp_path):
    out = tmp_path / "film.mp4"
    stitch([clips["a"], clips["mute"]], out, profile=PROFILE, transition=Transition(),
           memo=DirMemo(tmp_path / "memo"), normalize_audio=True)
    facts = film_facts(out)
    assert facts["frames"] == frames_for(SECONDS["a"] + SECONDS["mute"], PROFILE.fps)
    assert facts["audio_seconds"] == pytest.approx(facts["video_seconds"], abs=FRAME)


def test_corrupt_clip_raises_and_leaves_no_film(clips, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(clips["a"][1].read_bytes()[:2000])
    out = tmp_path / "out" / "film.mp4"
    out.parent.mkdir()
    out.write_bytes(b"the previous film")
    memo = DirMemo(tmp_path / "memo")
    with pytest.raises(StitchError, match=r"clip 2 \(.*bad\.mp4\)"):
        stitch([clips["a"], ("0" * 64, bad)], out, profile=PROFILE, transition=Transition(), memo=memo)
    assert out.read_bytes() == b"the previous film"
    assert sorted(p.name for p in out.parent.iterdir()) == ["film.mp4"]
    assert len(memo.puts) == 1


def test_ffmpeg_failure_names_the_step_and_the_clip(clips, tmp_path):
    out = tmp_path / "film.mp4"
    memo = DirMemo(tmp_path / "memo")
    profile = Profile(width=320, height=180, pix_fmt="no_such_format")
    with pytest.raises(StitchError, match=r"(?s)conforming clip 1 \(.*a\.mp4\) failed: .*no_such_format"):
        stitch([clips["a"], clips["b"]], out, profile=profile, transition=Transition(), memo=memo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memo"]
    assert memo.puts == []


def test_clip_shorter_than_its_transitions_is_refused(clips, tmp_path):
    with pytest.raises(StitchError, match=r"clip 2 .* too short for a 1\.000 s transition"):
        stitch([clips["b"], clips["mute"], clips["b"]], tmp_path / "film.mp4", profile=PROFILE,
               transition=Transition("crossfade", 1.0), memo=DirMemo(tmp_path / "memo"))


def test_no_clips_is_an_error(tmp_path):
    with pytest.raises(StitchError, match="no clips"):
        stitch([], tmp_path / "film.mp4", profile=PROFILE, transition=Transition(),
               memo=DirMemo(tmp_path / "memo"))


def test_concat_command():
    argv = build_concat_command(Path("/w/list.ffconcat"), Path("/w/audio.mov"), Path("/w/film.mp4"))
    assert argv == [
        "-y", "-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", "/w/list.ffconcat",
        "-i", "/w/audio.mov", "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "copy",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-map_metadata", "-1", "-map_chapters", "-1",
        "-movflags", "+faststart", "-f", "mp4", "/w/film.mp4",
    ]  # fmt: skip


def test_pcm_command_normalizes_loudness_only_when_asked():
    plain = build_pcm_command(Path("l"), Path("f.pcm"), profile=PROFILE)
    loud = build_pcm_command(Path("l"), Path("f.pcm"), profile=PROFILE, normalize_audio=True)
    assert "-af" not in plain
    assert plain[plain.index("-map") + 1] == "0:a:0" and plain[-3:] == ["-f", "s16le", "f.pcm"]
    assert loud[loud.index("-af") + 1] == "loudnorm=I=-23:TP=-1:LRA=11,aresample=48000"


def test_concat_list_quotes_paths(tmp_path):
    text = build_concat_list([tmp_path / "it's.mov", tmp_path / "b.mov"])
    assert text.splitlines() == [
        "ffconcat version 1.0",
        f"file '{tmp_path}/it'\\''s.mov'",
        f"file '{tmp_path}/b.mov'",
    ]


def test_conform_command_cuts_pieces_on_frame_and_sample_boundaries():
    outs = {part: Path(f"/w/{part}.mov") for part in ("head", "body", "tail")}
    argv = build_conform_command(Path("/w/clip.mp4"), outs, profile=PROFILE, frames=48,
                                 has_audio=False, edge=7)
    graph = argv[argv.index("-filter_complex") + 1]
    assert "anullsrc=r=48000:cl=stereo" in graph
    assert "trim=start_frame=7:end_frame=41" in graph
    assert "atrim=start_sample=14000:end_sample=82000" in graph
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-f"] == ["mov"] * 3
    assert argv[-1] == "/w/tail.mov"


def test_conform_command_refuses_a_clip_with_no_body():
    outs = {part: Path(f"/w/{part}.mov") for part in ("head", "body", "tail")}
    with pytest.raises(ValueError, match="no body"):
        build_conform_command(Path("c.mp4"), outs, profile=PROFILE, frames=24, has_audio=True, edge=12)


def test_piece_bounds_and_sample_positions():
    assert piece_bounds(48, 0) == {"whole": (0, 48)}
    assert piece_bounds(48, 12) == {"head": (0, 12), "body": (12, 36), "tail": (36, 48)}
    assert PROFILE.samples_at(7) == 14000
    assert Profile(320, 180, fps=24, sample_rate=44100).samples_at(1) == 1838


def test_transition_rounds_to_whole_frames():
    assert Transition().edge_frames(24) == 0
    assert Transition("crossfade", 0.3).edge_frames(24) == 7
    assert Transition("fade", 0.001).edge_frames(24) == 2
    with pytest.raises(ValueError):
        Transition("cut", 0.5)
    with pytest.raises(ValueError):
        Transition("crossfade", 0)
    with pytest.raises(ValueError):
        Transition("wipe", 1.0)  # type: ignore[arg-type]


def test_profile_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        Profile(width=321, height=180)


def test_keys_change_with_what_shapes_the_output():
    base = conform_key("a" * 64, PROFILE, 12, encoder="ffmpeg 9")
    assert conform_key("a" * 64, PROFILE, 12, encoder="ffmpeg 9") == base
    assert conform_key("b" * 64, PROFILE, 12, encoder="ffmpeg 9") != base
    assert conform_key("a" * 64, PROFILE, 0, encoder="ffmpeg 9") != base
    assert conform_key("a" * 64, Profile(320, 180, fps=25), 12, encoder="ffmpeg 9") != base
    assert conform_key("a" * 64, PROFILE, 12, encoder="ffmpeg 8") != base
    assert conform_key("a" * 64, PROFILE, 12, encoder="ffmpeg 9", mode="copy") != base
    assert window_key(base, base, "crossfade") != window_key(base, base, "fade")


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def video_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray() for frame in container.decode(video=0)]


def extradata(path: Path) -> bytes:
    with av.open(str(path)) as container:
        return bytes(container.streams.video[0].codec_context.extradata)


def test_cut_film_of_clips_from_one_encoder_copies_their_video(same, tmp_path):
    out = tmp_path / "film.mp4"
    steps: list[str] = []
    stats = stitch([same[n] for n in SAME], out, profile=PROFILE, transition=Transition(),
                   memo=DirMemo(tmp_path / "memo"), on_step=steps.append)
    assert stats == StitchStats(conforms_copied=3, segments=3, frames_copied=144)
    assert steps == ["copy clip 1/3 (one.mp4)", "copy clip 2/3 (two.mp4)",
                     "copy clip 3/3 (three.mp4)", "join 3 segments into film.mp4"]
    assert video_packets(out) == [p for n in SAME for p in video_packets(same[n][1])]
    film, clips = video_frames(out), [f for n in SAME for f in video_frames(same[n][1])]
    assert len(film) == len(clips) == sum(frames_for(SAME_SECONDS[n], 24) for n in SAME)
    assert all(np.array_equal(a, b) for a, b in zip(film, clips, strict=True))
    assert extradata(out) == extradata(same["one"][1])
    facts = film_facts(out)
    assert facts["video_seconds"] == pytest.approx(len(film) * FRAME, abs=1e-6)
    assert facts["audio_seconds"] == pytest.approx(facts["video_seconds"], abs=FRAME)
    assert (facts["video_codec"], facts["audio_codec"]) == ("h264", "aac")


def test_copied_film_keeps_sound_on_its_picture(same, tmp_path):
    out = tmp_path / "film.mp4"
    stitch([same[n] for n in SAME], out, profile=PROFILE, transition=Transition(),
           memo=DirMemo(tmp_path / "memo"))
    samples, zero = audio_samples(out)
    rate, ms = PROFILE.sample_rate, PROFILE.sample_rate // 1000
    mute_start = zero + round(SAME_SECONDS["one"] * rate)
    mute_end = mute_start + round(SAME_SECONDS["two"] * rate)
    assert rms(samples[mute_start - 15 * ms : mute_start - 5 * ms]) > 0.05
    assert rms(samples[mute_start + 5 * ms : mute_end - 5 * ms]) < 0.005
    assert rms(samples[mute_end + 5 * ms : mute_end + 15 * ms]) > 0.05


def test_two_clean_copied_stitches_give_identical_bytes(same, tmp_path):
    films = []
    for run in ("x", "y"):
        out = tmp_path / run / "film.mp4"
        stats = stitch([same[n] for n in SAME], out, profile=PROFILE, transition=Transition(),
                       memo=DirMemo(tmp_path / run / "memo"))
        assert stats.conforms_copied == 3
        films.append(out.read_bytes())
    assert films[0] == films[1]


@pytest.mark.parametrize(("odd", "why"), [
    ("b", "clip 3 (b.mp4): it is 256x144, not 320x180"),
    ("bframes", "clip 3 (bframes.mp4): its H.264 parameter sets differ from clip 1's"),
    ("refs", "clip 3 (refs.mp4): its H.264 parameter sets differ from clip 1's"),
])
def test_one_clip_unlike_the_others_is_conformed_to_their_setting(clips, same, odd, why, tmp_path):
    sequence = [same["one"], same["two"], (same | clips)[odd], same["three"]]
    out = tmp_path / "film.mp4"
    steps: list[str] = []
    stats = stitch(sequence, out, profile=PROFILE, transition=Transition(),
                   memo=DirMemo(tmp_path / "memo"), on_step=steps.append)
    assert stats == StitchStats(conforms_encoded=1, conforms_copied=3, segments=4, conformed=(why,),
                                parts_encoded=1, frames_copied=144,
                                frames_encoded=72 if odd == "b" else 48)
    assert steps[0] == f"re-encode {why}"
    assert extradata(out) == extradata(same["one"][1])
    facts = film_facts(out)
    seconds = {**SAME_SECONDS, "b": 3.0, "bframes": 2.0, "refs": 2.0}
    assert facts["frames"] == sum(frames_for(seconds[n], 24) for n in ("one", "two", odd, "three"))
    assert facts["audio_seconds"] == pytest.approx(facts["video_seconds"], abs=FRAME)


def test_copied_matched_and_encoded_conforms_are_memoised_apart(clips, same, tmp_path):
    memo = DirMemo(tmp_path / "memo")
    copied = stitch([same["one"]], tmp_path / "one.mp4", profile=PROFILE, transition=Transition(),
                    memo=memo)
    matched = stitch([same["one"], clips["b"]], tmp_path / "two.mp4", profile=PROFILE,
                     transition=Transition(), memo=memo)
    # no clip of the profile's format beside a transition: encoded with the stitcher's setting
    # (with one beside it, that clip's setting is matched, for the smart cut: test_smart_cut)
    encoded = stitch([clips["b"], clips["tall"]], tmp_path / "fade.mp4", profile=PROFILE,
                     transition=Transition("fade", 0.25), memo=memo)
    again = stitch([same["one"]], tmp_path / "three.mp4", profile=PROFILE, transition=Transition(),
                   memo=memo)
    assert (copied, matched, again) == (
        StitchStats(conforms_copied=1, segments=1, frames_copied=48),
        StitchStats(conforms_encoded=1, conforms_reused=1, segments=2, frames_copied=48,
                    frames_encoded=72,
                    conformed=("clip 2 (b.mp4): it is 256x144, not 320x180",), parts_encoded=1),
        StitchStats(conforms_reused=1, segments=1, frames_copied=48))
    assert encoded.conforms_encoded == 2
    modes = [name.split("-")[:2] if name.startswith("conform") else ["window"] for name in memo.puts]
    assert modes == [["conform", "copy"], ["conform", "match"]] + [["conform", "encode"]] * 4 + [["window"]]
    assert (tmp_path / "one.mp4").read_bytes() == (tmp_path / "three.mp4").read_bytes()


def test_transitions_encode_even_clips_that_could_be_copied(same, tmp_path):
    out = tmp_path / "film.mp4"
    stats = stitch([same[n] for n in SAME], out, profile=PROFILE,
                   transition=Transition("crossfade", 0.25), memo=DirMemo(tmp_path / "memo"))
    # one keyframe per clip: no whole GOP to copy beside a transition (smart cut: test_smart_cut)
    assert stats == StitchStats(conforms_encoded=3, windows_encoded=2, segments=1 + 2 * 2,
                                parts_encoded=2 + 3 + 2, frames_encoded=132)
    assert film_facts(out)["frames"] == sum(frames_for(SAME_SECONDS[n], 24) for n in SAME) - 2 * 6


def test_animatic_clips_are_copied(tmp_path):
    provider = AnimaticProvider()
    rendered = []
    for i, audio in enumerate((True, False)):
        dest = tmp_path / f"shot{i}.mp4"
        job = RenderJob(provider="animatic", model="animatic-veo-3.1", prompt=f"shot {i}", duration=4,
                        seed=i, audio=audio, label=f"shot{i}")
        ctx = RenderContext(shot_id=f"shot{i}", inputs={}, journal=None)  # type: ignore[arg-type]
        provider.render(job, dest, ctx)
        rendered.append((hashlib.sha256(dest.read_bytes()).hexdigest(), dest))
    out = tmp_path / "film.mp4"
    stats = stitch(rendered, out, profile=Profile(width=1280, height=720, fps=24),
                   transition=Transition(), memo=DirMemo(tmp_path / "memo"))
    assert stats == StitchStats(conforms_copied=2, segments=2, frames_copied=192)
    assert video_packets(out) == video_packets(rendered[0][1]) + video_packets(rendered[1][1])
    facts = film_facts(out)
    assert facts["frames"] == 2 * 4 * 24
    assert facts["audio_seconds"] == pytest.approx(facts["video_seconds"], abs=FRAME)


def test_clip_facts_say_what_blocks_a_copy(clips, same):
    one = read_clip(same["one"][1])
    assert (one.frames, one.frame_rate, one.reorders, one.starts_on_idr) == (48, 24, False, True)
    assert copy_blocker(one, PROFILE) is None
    assert copy_blocker(one, Profile(320, 180, fps=25)) == "it is not exactly 25 frames a second from time 0"
    assert copy_blocker(read_clip(clips["mute"][1]), PROFILE) == "it is not exactly 24 frames a second from time 0"
    assert copy_blocker(read_clip(clips["tall"][1]), PROFILE) == "it is 180x320, not 320x180"
    bframes = read_clip(same["bframes"][1])
    assert bframes.reorders and copy_blocker(bframes, PROFILE) is None


def test_copy_command_copies_video_and_cuts_audio_to_the_frames():
    argv = build_copy_command(Path("/w/clip.mp4"), Path("/w/whole.mov"), profile=PROFILE, frames=48,
                              has_audio=True)
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.endswith("apad,atrim=end_sample=96000[a]")
    assert argv[argv.index("-c:v") + 1] == "copy"
    assert argv[argv.index("-c:a") + 1] == "pcm_s16le"
    assert argv[-3:] == ["-f", "mov", "/w/whole.mov"]
