"""Stitching clips as providers return them: x264 High with B-frames, AAC 48 kHz stereo.

The film of cuts copies the video of every clip from the majority's encoder setting, conforms the
others (here two clips from a second setting) to that setting, and encodes its sound in spans.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import av
import numpy as np
import pytest

from storyboard.edit.conform import BITEXACT_ARGS, Profile, read_clip
from storyboard.edit.film_setting import match_args, plan_video
from storyboard.media import run_ffmpeg
from storyboard.edit.soundtrack import AAC_FRAME, SPAN_FRAMES, encode_soundtrack, plan_spans
from storyboard.edit.stitch import StitchStats, Transition, stitch
from tests._clips import left_channel as sound, render_clip
from tests.test_stitch import DirMemo

PROFILE = Profile(width=320, height=180, fps=24)
RATE = PROFILE.sample_rate
BURST = 0.25
"""Seconds into every clip at which its tone burst starts."""

MAIN = ("-c:v", "libx264", "-profile:v", "high", "-preset", "medium", "-bf", "3", "-r", "24")
SECOND = ("-c:v", "libx264", "-profile:v", "high", "-preset", "fast", "-bf", "2", "-crf", "26",
          "-r", "25")
SECONDS = {"m0": 2.0, "m1": 1.5, "o0": 1.0, "m2": 2.0, "m3": 1.0, "o1": 1.5, "m4": 1.0}
ORDER = list(SECONDS)
ODD = ("o0", "o1")



def render(path: Path, index: int, seconds: float, video_args: tuple[str, ...],
           *extra: str) -> tuple[str, Path]:
    """A clip with moving colour bars and a 50 ms tone burst BURST s in, silent otherwise."""
    burst = f"0.5*sin(2*PI*{440 + 110 * index}*t)*between(t\\,{BURST}\\,{BURST + 0.05})"
    return render_clip(path, index * 50, seconds, burst, video_args, *extra), path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("veo")
    return {
        name: render(folder / f"{name}.mp4", index, seconds, SECOND if name in ODD else MAIN)
        for index, (name, seconds) in enumerate(SECONDS.items())
    }


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def onsets(samples: np.ndarray, threshold: float = 0.25) -> list[int]:
    """Sample positions where the signal first rises above ``threshold`` after 0.1 s of quiet."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    return [int(at) for i, at in enumerate(loud) if i == 0 or at - loud[i - 1] > RATE // 10]


def streams(path: Path) -> dict:
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        return {
            "video": (video.codec_context.name, video.codec_context.profile,
                      video.codec_context.width, video.codec_context.height),
            "audio": (audio.codec_context.name, audio.rate, audio.channels),
            "video_seconds": float(video.duration * video.time_base),
            "audio_seconds": float(audio.duration * audio.time_base),
            "extradata": bytes(video.codec_context.extradata),
        }


def clip_frames(name: str) -> int:
    return round(SECONDS[name] * PROFILE.fps)


@pytest.fixture(scope="module")
def film(clips, tmp_path_factory):
    work = tmp_path_factory.mktemp("film")
    steps: list[str] = []
    out = work / "film.mp4"
    stats = stitch([clips[n] for n in ORDER], out, profile=PROFILE, transition=Transition(),
                   memo=DirMemo(work / "memo"), on_step=steps.append)
    return out, stats, steps, work


def test_clips_of_the_main_setting_are_copied_and_the_odd_ones_conformed(clips, film):
    out, stats, steps, _ = film
    assert stats == StitchStats(
        conforms_encoded=2, conforms_copied=5, segments=7, parts_encoded=2, frames_copied=180,
        frames_encoded=60,
        conformed=("clip 3 (o0.mp4): it is not exactly 24 frames a second from time 0",
                   "clip 6 (o1.mp4): it is not exactly 24 frames a second from time 0"),
    )
    assert steps[:2] == [f"re-encode clip {i} ({n}.mp4): it is not exactly 24 frames a second "
                         "from time 0" for i, n in ((3, "o0"), (6, "o1"))]
    assert [s for s in steps if s.startswith(("copy", "conform"))] == [
        f"{'conform' if n in ODD else 'copy'} clip {i}/7 ({n}.mp4)" for i, n in enumerate(ORDER, 1)
    ]
    facts = streams(out)
    assert facts["video"] == ("h264", "High", 320, 180)
    assert facts["audio"] == ("aac", RATE, 2)
    assert facts["extradata"] == streams(clips["m0"][1])["extradata"]


def test_copied_clips_keep_their_packets_and_pixels(clips, film):
    out = film[0]
    film_packets, film_frames = packets(out), frames(out)
    assert len(film_frames) == sum(clip_frames(n) for n in ORDER)
    at = 0
    for name in ORDER:
        count = clip_frames(name)
        source = frames(clips[name][1])
        if name in ODD:
            assert len(packets(clips[name][1])) != count  # 25 fps: conformed to 24
            first = film_frames[at].astype(int) - source[0].astype(int)
            assert np.abs(first).mean() < 2
        else:
            assert film_packets[at:at + count] == packets(clips[name][1])
            assert all(np.array_equal(a, b) for a, b in zip(film_frames[at:at + count], source,
                                                            strict=True))
        at += count


def test_sound_stays_on_its_picture_at_every_join(film):
    out = film[0]
    facts = streams(out)
    total = sum(clip_frames(n) for n in ORDER)
    assert facts["video_seconds"] == pytest.approx(total / PROFILE.fps, abs=1e-9)
    assert facts["audio_seconds"] == pytest.approx(facts["video_seconds"], abs=AAC_FRAME / RATE)
    starts, at = [], 0
    for index, name in enumerate(ORDER):
        rise = RATE / (12 * (440 + 110 * index))  # 0.5 sin(2 pi f t) passes 0.25 at t = 1 / 12f
        starts.append(PROFILE.samples_at(at) + BURST * RATE + rise)
        at += clip_frames(name)
    found = onsets(sound(out))
    assert len(found) == len(ORDER)
    assert all(abs(f - s) <= 3 for f, s in zip(found, starts, strict=True))


def test_copied_film_is_byte_identical_and_reused_from_the_memo(clips, film, tmp_path):
    out, _, _, work = film
    again = tmp_path / "again.mp4"
    steps: list[str] = []
    stats = stitch([clips[n] for n in ORDER], again, profile=PROFILE, transition=Transition(),
                   memo=DirMemo(work / "memo"), on_step=steps.append, jobs=1)
    assert (stats.conforms_reused, stats.conforms_copied, stats.conforms_encoded) == (7, 0, 0)
    assert not [s for s in steps if s.startswith(("copy", "conform"))]
    clean = tmp_path / "clean.mp4"
    stitch([clips[n] for n in ORDER], clean, profile=PROFILE, transition=Transition(),
           memo=DirMemo(tmp_path / "memo"), jobs=3)
    assert again.read_bytes() == out.read_bytes() == clean.read_bytes()


def test_a_setting_x264_did_not_write_makes_every_clip_encode(clips, tmp_path):
    stripped = []
    for name in ("m0", "m1"):
        dest = tmp_path / f"{name}.mp4"  # the SEI holding x264's settings removed
        run_ffmpeg(["-y", "-i", str(clips[name][1]), "-c", "copy",
                    "-bsf:v", "filter_units=remove_types=6", str(dest)])
        stripped.append((hashlib.sha256(dest.read_bytes()).hexdigest(), dest))
    assert read_clip(stripped[0][1]).x264_options is None
    steps: list[str] = []
    out = tmp_path / "film.mp4"
    stats = stitch([stripped[0], clips["o0"], stripped[1]], out, profile=PROFILE,
                   transition=Transition(), memo=DirMemo(tmp_path / "memo"), on_step=steps.append)
    why = ("clip 2 (o0.mp4): it is not exactly 24 frames a second from time 0, and clip 1's "
           "encoder cannot be matched: it was not made by x264")
    assert steps[0] == f"re-encode the video: {why}"
    assert (stats.conforms_encoded, stats.conforms_copied) == (3, 0)
    assert len(frames(out)) == clip_frames("m0") + clip_frames("o0") + clip_frames("m1")


def test_a_conform_that_cannot_match_makes_every_clip_encode(clips, tmp_path):
    # x264 does not list VUI settings such as overscan among its options, so the match misses it.
    main = [render(tmp_path / f"v{i}.mp4", i, 1.0, MAIN, "-x264-params", "overscan=show")
            for i in range(2)]
    steps: list[str] = []
    out = tmp_path / "film.mp4"
    stats = stitch([main[0], clips["o0"], main[1]], out, profile=PROFILE, transition=Transition(),
                   memo=DirMemo(tmp_path / "memo"), on_step=steps.append)
    why = ("re-encode the video: clip 2 (o0.mp4) encoded to match the other clips' H.264 setting "
           "still has other parameter sets")
    assert steps[2] == "conform clip 2/3 (o0.mp4)"  # the copies go on while it encodes, then it is checked
    assert steps.count(why) == 1 and steps.index(why) > 2
    assert (stats.conforms_encoded, stats.conforms_copied) == (3, 0)
    assert len(frames(out)) == 24 + clip_frames("o0") + 24


def test_match_args_pin_what_the_parameter_sets_hold(clips):
    args, why = match_args(read_clip(clips["m0"][1]), PROFILE)
    assert why is None
    params = dict(p.split("=") for p in args[args.index("-x264-params") + 1].split(":"))
    assert {k: params[k] for k in ("bframes", "b-pyramid", "ref", "weightp", "8x8dct", "cabac")} == {
        "bframes": "3", "b-pyramid": "2", "ref": "3", "weightp": "2", "8x8dct": "1", "cabac": "1"}
    assert args[args.index("-profile:v") + 1] == "high"


def test_the_setting_is_the_one_most_clips_share(clips):
    facts = [(f"{n}.mp4", read_clip(clips[n][1])) for n in ("o0", "m0", "m1")]
    plan = plan_video(facts, PROFILE)
    assert plan.modes == ("match", "copy", "copy")
    assert plan.setting == facts[1][1].extradata


def test_spans_cover_the_film_on_aac_frame_boundaries():
    total = 3 * SPAN_FRAMES * AAC_FRAME + 777
    spans = plan_spans(total)
    step = SPAN_FRAMES * AAC_FRAME
    assert [s.keep_from for s in spans] == [-AAC_FRAME, step, 2 * step, 3 * step]
    assert [s.keep_to for s in spans[:-1]] == [s.keep_from for s in spans[1:]]
    assert spans[-1].keep_to is None
    assert spans[-1].read_to == total and all(s.read_from % AAC_FRAME == 0 for s in spans)
    assert plan_spans(100) == [type(spans[0])(0, 100, -AAC_FRAME, None)]


def test_sound_encoded_in_spans_times_like_one_encode(tmp_path):
    seconds = 2 * SPAN_FRAMES * AAC_FRAME / RATE + 1.3  # three spans
    bursts = "+".join(f"0.5*sin(2*PI*1000*t)*between(t\\,{at}\\,{at + 0.02})"
                      for at in (1.0, 10.9, 11.2, 21.84, 23.0))
    pcm = tmp_path / "film.pcm"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"aevalsrc={bursts}|{bursts}:s={RATE}:d={seconds}",
                "-f", "s16le", "-ac", "2", str(pcm)])
    joined, single = tmp_path / "joined.mov", tmp_path / "single.mov"
    run = (lambda argv, step: run_ffmpeg(argv))
    assert encode_soundtrack(pcm, joined, profile=PROFILE, work=tmp_path, run=run, jobs=2) == 3
    run_ffmpeg(["-y", "-f", "s16le", "-ar", str(RATE), "-ac", "2", "-i", str(pcm), "-c:a", "aac",
                "-b:a", "192000", *BITEXACT_ARGS, "-f", "mov", str(single)])

    def timing(path: Path) -> list[tuple[int, int]]:
        with av.open(str(path)) as container:
            return [(p.pts, p.duration) for p in container.demux(audio=0) if p.size]

    assert timing(joined) == timing(single)
    ours, theirs = sound(joined), sound(single)
    source = np.fromfile(pcm, dtype="<i2").reshape(-1, 2)[:, 0] / 32768
    assert len(ours) == len(theirs) >= len(source)
    expected = onsets(source)
    assert len(onsets(ours)) == len(onsets(theirs)) == len(expected) == 5
    assert all(abs(a - b) <= 2 for a, b in zip(onsets(ours), onsets(theirs), strict=True))
    assert all(abs(a - b) <= 2 for a, b in zip(onsets(ours), expected, strict=True))
    error = np.sqrt(np.mean((ours[:len(source)] - source) ** 2))
    assert error < 2 * np.sqrt(np.mean((theirs[:len(source)] - source) ** 2)) + 1e-4


def test_a_film_may_start_with_a_conformed_clip(clips, tmp_path):
    out = tmp_path / "film.mp4"
    names = ["o1", "m1", "m3"]
    stats = stitch([clips[n] for n in names], out, profile=PROFILE, transition=Transition(),
                   memo=DirMemo(tmp_path / "memo"))
    assert (stats.conforms_encoded, stats.conforms_copied) == (1, 2)
    first = clip_frames("o1")
    assert packets(out)[first:] == packets(clips["m1"][1]) + packets(clips["m3"][1])
    assert len(frames(out)) == sum(clip_frames(n) for n in names)
    facts = streams(out)
    assert facts["extradata"] == streams(clips["m1"][1])["extradata"]
    assert facts["audio_seconds"] == pytest.approx(facts["video_seconds"], abs=AAC_FRAME / RATE)


def audio_packets(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        scale = stream.time_base * stream.rate
        return [(int(p.pts * scale), bytes(p)) for p in container.demux(stream) if p.size]


def test_spans_leave_room_for_clips_whose_own_packets_are_copied():
    step = SPAN_FRAMES * AAC_FRAME
    total = 3 * 128000
    spans = plan_spans(total, [(0, 128000), (128000, 128000), (256000, 100000)])
    pieces = [(s.keep_from, s.keep_to, s.source) for s in spans]
    assert pieces == [
        (-AAC_FRAME, 2048, None), (2048, 125952, 0), (125952, 130048, None),
        (130048, 253952, 1), (253952, 258048, None), (258048, 355328 - 2048, 2),
        (355328 - 2048, None, None),
    ]
    assert spans[1].read_from == 0 and spans[3].read_from == 128000
    assert all(s.read_from % AAC_FRAME == 0 or s.source is not None for s in spans)
    assert len(plan_spans(3 * step, [(0, 3 * step)])) == 3


@pytest.mark.parametrize("middle", ["copied", "conformed"])
def test_clips_on_the_aac_grid_lend_their_own_packets(tmp_path, middle):
    # 64 frames at 24 fps are 128,000 samples, a whole number of AAC frames: every clip
    # starts on the film's AAC grid, so all but a few packets at each join are the clips' own,
    # a whole clip conformed to the film's setting too (its sound is its own as well).
    names = ["g0", "g1", "g2"]
    clips = [render(tmp_path / f"{n}.mp4", i, 64 / 24,
                    SECOND if middle == "conformed" and i == 1 else MAIN, "-r", "24")
             for i, n in enumerate(names)]
    out = tmp_path / "film.mp4"
    stats = stitch(clips, out, profile=PROFILE, transition=Transition(),
                   memo=DirMemo(tmp_path / "memo"))
    assert (stats.conforms_copied, stats.conforms_encoded) == ((3, 0) if middle == "copied" else (2, 1))
    film = dict(audio_packets(out))
    for index, (_, path) in enumerate(clips):
        own = audio_packets(path)
        start = index * 128000
        inner = [(start + at, data) for at, data in own if 2048 <= at < 128000 - 2048]
        assert len(inner) == 121
        assert all(film[at] == data for at, data in inner)
    assert sorted(film) == [-AAC_FRAME + AAC_FRAME * k for k in range(len(film))]
    facts = streams(out)
    assert facts["video_seconds"] == pytest.approx(3 * 64 / 24, abs=1e-9)
    assert facts["audio_seconds"] == pytest.approx(facts["video_seconds"], abs=1e-9)
    found = onsets(sound(out))
    expected = [i * 128000 + BURST * RATE + RATE / (12 * (440 + 110 * i)) for i in range(3)]
    assert all(abs(f - e) <= 3 for f, e in zip(found, expected, strict=True))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="nothing is encoded ahead on a single core")
def test_the_copies_go_on_while_an_odd_clip_encodes(clips, tmp_path, monkeypatch):
    # The odd clip comes first: its encode (held back here until the copies are done, for at most
    # 20 s) must not keep the clips after it waiting; the film and its lines are as in film order.
    import threading

    from storyboard.edit import render as render_module
    from storyboard.edit import stitch as stitch_module

    copied, held = threading.Event(), []
    copies = {"made": 0}
    real_copy, real_ffmpeg = render_module.write_copy, stitch_module._ffmpeg

    def write_copy(*args, **kwargs):
        made = real_copy(*args, **kwargs)
        copies["made"] += 1
        if copies["made"] == 2:
            copied.set()
        return made

    def ffmpeg(argv, step):
        if step.startswith("conforming clip 1"):
            held.append(copied.wait(timeout=20))
        real_ffmpeg(argv, step)

    monkeypatch.setattr(render_module, "write_copy", write_copy)
    monkeypatch.setattr(stitch_module, "_ffmpeg", ffmpeg)
    steps: list[str] = []
    out = tmp_path / "film.mp4"
    stats = stitch([clips["o0"], clips["m0"], clips["m1"]], out, profile=PROFILE,
                   transition=Transition(), memo=DirMemo(tmp_path / "memo"), on_step=steps.append)
    assert held == [True]  # both copies were made while the odd clip's encode waited
    assert [line for line in steps if line.startswith(("conform", "copy"))] == [
        "conform clip 1/3 (o0.mp4)", "copy clip 2/3 (m0.mp4)", "copy clip 3/3 (m1.mp4)"]
    assert (stats.conforms_encoded, stats.conforms_copied) == (1, 2)
    assert len(frames(out)) == clip_frames("o0") + 48 + 36
