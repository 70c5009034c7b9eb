"""Smart cut: a trimmed clip (or one beside a transition) with the film's H.264 setting keeps its
whole closed GOPs as they are and re-encodes only the partial GOPs at its edges.

The clips are Veo-like (x264 High, B-frames, a keyframe every 12 frames, AAC 48 kHz stereo)
with a short tone burst every quarter second, so the film's sound can be checked against its
picture at every segment.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from storyboard.edit.conform import Profile, read_clip
from storyboard.edit.pieces import plan_film
from storyboard.edit.render import extradata
from storyboard.edit.stitch import stitch
from storyboard.edit.timeline import ClipPiece, Join, Timeline
from tests._clips import left_channel as sound, render_clip
from tests.test_stitch import DirMemo

PROFILE = Profile(width=320, height=180, fps=24)
RATE = PROFILE.sample_rate
AAC_FRAME = 1024
KEYINT = 12
VEO = ("-c:v", "libx264", "-profile:v", "high", "-preset", "medium", "-bf", "3",
       "-g", str(KEYINT), "-keyint_min", str(KEYINT), "-sc_threshold", "0")
OPEN = (*VEO, "-x264-params", "open-gop=1")
OTHER = ("-c:v", "libx264", "-profile:v", "high", "-preset", "fast", "-bf", "2", "-crf", "26",
         "-g", str(KEYINT), "-sc_threshold", "0")
BURSTS = [0.1 + 0.25 * k for k in range(12)]
"""Source seconds at which every clip's 20 ms tone bursts start."""


def render(path: Path, hue: int, seconds: float, video_args: tuple[str, ...]) -> ClipPiece:
    burst = f"0.5*sin(2*PI*{440 + hue}*t)*between(mod(t-0.1\\,0.25)\\,0\\,0.02)"
    sha = render_clip(path, hue, seconds, burst, video_args, "-r", "24")
    return ClipPiece(shot=path.stem, sha=sha, path=path, in_=0.0, out=seconds)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smart")
    return {"a": render(folder / "a.mp4", 0, 3.0, VEO), "b": render(folder / "b.mp4", 90, 3.0, VEO),
            "open": render(folder / "open.mp4", 180, 2.0, OPEN),
            "other": render(folder / "other.mp4", 270, 2.0, OTHER)}


def cut(piece: ClipPiece, in_: float, out: float) -> ClipPiece:
    return replace(piece, in_=in_, out=out)


def edit(clips, a_in: float = 0.3, last_out: float = 1.9) -> Timeline:
    """a 0.3-2.8 s, crossfade 0.5 s, b whole, cut, a 0-1.9 s."""
    return Timeline((cut(clips["a"], a_in, 2.8), clips["b"], cut(clips["a"], 0.0, last_out)),
                    (Join("crossfade", 0.5), Join("cut", 0.0)))


COPIED = [("a", 12, 48, 5), ("b", 12, 72, 60), ("a", 0, 36, 120)]
"""The runs of whole GOPs the main edit copies: (clip, first frame, end frame, film frame).

a from frame 7 (0.3 s) to 67 (2.8 s) with a 12-frame tail: keyframes 12 .. 48 inside 7 .. 55.
b whole after a 12-frame head: 12 to its end. a from 0 to 46 (1.9 s): 0 .. 36."""
WINDOW = range(48, 60)
"""The film frames of the crossfade."""


@pytest.fixture(scope="module")
def film(clips, tmp_path_factory):
    work = tmp_path_factory.mktemp("film")
    memo, steps = DirMemo(work / "memo"), []
    stats = stitch(edit(clips), work / "film.mp4", profile=PROFILE, memo=memo,
                   on_step=steps.append)
    return work / "film.mp4", stats, steps, memo, work


def pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]


def packets(path: Path) -> list[tuple[int, bytes]]:
    """(presentation time, bytes) of every video packet, in decode order."""
    with av.open(str(path)) as container:
        return [(p.pts, bytes(p)) for p in container.demux(video=0) if p.size]


def source_of(timeline: Timeline, frame: int) -> tuple[ClipPiece, int] | None:
    """The clip and clip frame film frame ``frame`` shows, or None inside a transition."""
    starts = timeline.starts(24)
    for index, piece in enumerate(timeline.pieces):
        left = timeline.joins[index - 1].frames(24) if index else 0
        right = timeline.joins[index].frames(24) if index < len(timeline.joins) else 0
        at = frame - starts[index]
        if left <= at < timeline.piece_frames(index, 24) - right:
            return piece, round(piece.in_ * 24) + at
        if 0 <= at < timeline.piece_frames(index, 24):
            return None
    raise AssertionError(f"frame {frame} is past the film")


def test_the_film_has_exactly_the_timelines_frames_and_length(film, clips):
    out, stats, _, _, _ = film
    timeline = edit(clips)
    assert len(pictures(out)) == timeline.frames(24) == 60 + 72 - 12 + 46
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert float(video.duration * video.time_base) == pytest.approx(166 / 24, abs=1e-6)
        assert abs(float(audio.duration * audio.time_base) - 166 / 24) <= AAC_FRAME / RATE
    assert stats.frames_copied == sum(end - first for _, first, end, _ in COPIED)
    assert stats.frames_copied + stats.frames_encoded == 166
    assert extradata(out) == read_clip(clips["a"].path).extradata  # one set of parameter sets
    assert stats.spans_copied == 3 and stats.parts_encoded == 5  # a: in, out, tail; b: head; a: out


def test_the_copied_gops_are_the_clips_own_packets(film, clips):
    out = film[0]
    made = [data for _, data in packets(out)]
    for name, first, end, _ in COPIED:
        source = packets(clips[name].path)
        order = sorted(pts for pts, _ in source)
        wanted = [data for pts, data in source if first <= order.index(pts) < end]
        assert len(wanted) == end - first
        at = made.index(wanted[0])
        assert made[at:at + len(wanted)] == wanted


def test_the_pictures_are_the_clips_copied_exactly_and_encoded_closely(film, clips):
    out = film[0]
    timeline = edit(clips)
    frames = pictures(out)
    sources = {name: pictures(clips[name].path) for name in ("a", "b")}
    exact = 0
    for frame, picture in enumerate(frames):
        found = source_of(timeline, frame)
        if found is None:
            assert frame in WINDOW
            continue
        piece, at = found
        source = sources[piece.shot][at]
        if any(film_at <= frame < film_at + end - first for _, first, end, film_at in COPIED):
            assert np.array_equal(picture, source), f"copied frame {frame} differs"
            exact += 1
        else:  # close to its own source frame, and closer than to the frames beside it
            near = [psnr(picture, sources[piece.shot][k]) for k in (at - 1, at, at + 1)
                    if 0 <= k < len(sources[piece.shot])]
            assert psnr(picture, source) >= 30 and psnr(picture, source) == max(near), frame
    assert exact == 132


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a - b) ** 2)
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-9)))


def test_sound_stays_with_picture_at_every_join(film, clips):
    out, _, _, memo, _ = film
    timeline = edit(clips)
    audio = sound(out)
    starts = timeline.starts(24)
    checked = 0
    for index, piece in enumerate(timeline.pieces):
        for t in BURSTS:
            at = round(piece.in_ * 24)
            film_frame = starts[index] + t * 24 - at
            if not (piece.in_ <= t < piece.out) or source_of(timeline, int(film_frame)) is None:
                continue
            expected = round(film_frame * RATE / 24)
            span = np.abs(audio[expected - 2 * AAC_FRAME:expected + 2 * AAC_FRAME])
            onset = expected - 2 * AAC_FRAME + int(np.argmax(span > 0.2))
            assert abs(onset - expected) <= AAC_FRAME, (index, t, onset - expected)
            checked += 1
    assert checked >= 20
    for name in memo.puts:  # every segment: its sound exactly as long as its picture
        with av.open(str(memo.memo_get(name))) as container:
            video, sound_ = container.streams.video[0], container.streams.audio[0]
            samples = sum(f.samples for f in container.decode(sound_))
            container.seek(0)
            pictured = sum(1 for p in container.demux(video) if p.size)
        assert samples == pictured * RATE // 24, name


def test_the_output_says_what_was_smart_cut(film):
    steps = film[2]
    lines = [s for s in steps if s.startswith("smart cut")]
    assert lines == [
        "smart cut clip 1 (a): 1.5 s copied, 1.0 s re-encoded (the crossfade after it; "
        "trim in at 0.30 s is mid-GOP; the crossfade after it starts mid-GOP)",
        "smart cut clip 2 (b): 2.5 s copied, 0.5 s re-encoded (the crossfade before it)",
        "smart cut clip 3 (a): 1.5 s copied, 0.4 s re-encoded (trim out at 1.90 s is mid-GOP)",
    ]


def test_a_trim_change_reencodes_only_the_touched_edge(film, clips):
    _, _, _, memo, work = film
    # the last clip's out point moves within its last GOP: its encoded end only
    stats = stitch(edit(clips, last_out=1.7), work / "out.mp4", profile=PROFILE, memo=memo)
    assert (stats.parts_encoded, stats.spans_copied, stats.windows_encoded) == (1, 0, 0)
    assert stats.frames_copied == 132 and len(pictures(work / "out.mp4")) == 166 - 5
    # the first clip's in point moves within its first GOP: its encoded start only (the tail,
    # the window after it and the copied run are the same frames of the clip)
    stats = stitch(edit(clips, a_in=0.2), work / "in.mp4", profile=PROFILE, memo=memo)
    assert (stats.parts_encoded, stats.spans_copied, stats.windows_encoded) == (1, 0, 0)
    assert len(pictures(work / "in.mp4")) == 166 + 2
    # and an out point moved past a keyframe copies one GOP less
    stats = stitch(edit(clips, last_out=1.4), work / "gop.mp4", profile=PROFILE, memo=memo)
    assert (stats.parts_encoded, stats.spans_copied, stats.windows_encoded) == (1, 1, 0)
    assert stats.frames_copied == 132 - KEYINT


def test_open_gops_other_settings_and_short_spans_are_encoded(clips, tmp_path):
    assert read_clip(clips["open"].path).cuts == (0,)
    assert read_clip(clips["a"].path).cuts == tuple(range(0, 72, KEYINT))
    timeline = Timeline((clips["a"], cut(clips["open"], 0.3, 1.8), cut(clips["other"], 0.2, 1.8),
                         cut(clips["a"], 0.1, 0.4)),
                        (Join("cut", 0.0), Join("crossfade", 0.25), Join("cut", 0.0)))
    steps: list[str] = []
    out = tmp_path / "film.mp4"
    stats = stitch(timeline, out, profile=PROFILE, memo=DirMemo(tmp_path / "memo"),
                   on_step=steps.append)
    assert stats.spans_copied == 0 and stats.frames_copied == 72  # the first clip, whole
    assert stats.conforms_copied == 1
    assert any(s.startswith("clip 3 (other.mp4): no smart cut: its H.264 parameter sets differ")
               for s in steps), steps
    assert "smart cut clip 2 (open): nothing copied" in "\n".join(steps)
    assert "smart cut clip 4 (a): nothing copied" in "\n".join(steps)
    frames = pictures(out)
    assert len(frames) == timeline.frames(24)
    for frame, picture in enumerate(frames):
        found = source_of(timeline, frame)
        if found is not None:
            source = pictures(found[0].path)[found[1]] if frame % 9 == 0 else None
            if source is not None:
                mse = np.mean((picture - source) ** 2)
                assert 10 * np.log10(255 ** 2 / max(mse, 1e-9)) >= 28, frame
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert abs(float(audio.duration * audio.time_base)
                   - float(video.duration * video.time_base)) <= AAC_FRAME / RATE


def test_forced_encode_smart_cuts_nothing(clips):
    timeline = edit(clips)
    facts = {p.sha: read_clip(p.path) for p in timeline.pieces}
    assert plan_film(timeline, facts, PROFILE).smart == frozenset({0, 1, 2})
    assert plan_film(timeline, facts, PROFILE, encode="asked").smart == frozenset()


def test_a_part_is_split_at_its_first_and_last_clean_cut():
    from storyboard.edit.conform import Trim
    from storyboard.edit.gops import Span, split_span

    cuts = tuple(range(0, 72, KEYINT))
    assert split_span(0, 46, Trim(0, 46), cuts, 72) == [Span(0, 36, True, 0), Span(36, 46)]
    assert split_span(0, 24, Trim(12, 24), cuts, 72) == [Span(0, 24, True, 12)]  # on keyframes
    assert split_span(0, 30, Trim(12, 24, 6), cuts, 72) == [Span(0, 24, True, 12), Span(24, 30)]
    assert split_span(0, 30, Trim(48, 30), cuts, 72) == [Span(0, 24, True, 48), Span(24, 30)]
    assert split_span(0, 8, Trim(2, 8), cuts, 72) == [Span(0, 8)]  # no whole GOP
    assert split_span(0, 20, Trim(50, 20), (0, 60, 69), 70) == [Span(0, 20)]  # 10 frames: not worth a copy
    assert split_span(0, 22, Trim(48, 22), (0, 48, 60), 70) == [Span(0, 22, True, 48)]  # 22 frames: copied
    # a body after a 5-frame head: clip frames 12 .. 47 of it, so 12 .. 36 copied
    assert split_span(5, 40, Trim(7, 60), cuts, 72) == [Span(5, 29, True, 12), Span(29, 40)]


def test_an_edge_decoded_from_its_own_gop_has_the_same_bytes(clips, tmp_path):
    from storyboard.edit.conform import Trim, build_conform_command
    from storyboard.edit.film_setting import match_args
    from storyboard.media import run_ffmpeg

    source = clips["a"].path
    args, _ = match_args(read_clip(source), PROFILE)
    made = []
    for name, trim, bounds, seek in (("whole", Trim(7, 60), (41, 53), 0),  # clip frames 48 .. 60
                                     ("seeked", Trim(48, 19), (0, 12), 48)):
        out = tmp_path / f"{name}.mov"
        run_ffmpeg(build_conform_command(source, {name: out}, profile=PROFILE, frames=bounds[1],
                                         has_audio=True, video_args=args, trim=trim,
                                         bounds={name: bounds}, seek=seek))
        made.append(out.read_bytes())
    assert made[0] == made[1]


def test_text_and_hold_are_encoded_and_the_gops_between_copied(clips, tmp_path):
    from storyboard.edit.timeline import Overlay

    # a from frame 7 (62 frames: 2.6 s), text over piece frames 24-36, then 12 held frames:
    # the bodies before and after the text copy clip frames 12-24 and 48-60
    piece = replace(clips["a"], in_=0.3, out=2.9, hold=0.5,
                    overlays=(Overlay("Cape Wrath", 1.0, 1.5),))
    timeline = Timeline((piece,))
    out = tmp_path / "film.mp4"
    steps: list[str] = []
    stats = stitch(timeline, out, profile=PROFILE, memo=DirMemo(tmp_path / "memo"),
                   on_step=steps.append)
    assert (stats.frames_copied, stats.frames_encoded, stats.spans_copied) == (24, 74 - 24, 2)
    assert steps[0] == ("smart cut clip 1 (a): 1.0 s copied, 2.1 s re-encoded (text 'Cape "
                        "Wrath'; a 0.50 s hold; trim in at 0.30 s is mid-GOP; the cut at 1.00 s "
                        "into it is mid-GOP; the cut at 1.50 s into it is mid-GOP; trim out at "
                        "2.90 s is mid-GOP)")
    frames, source = pictures(out), pictures(clips["a"].path)
    assert len(frames) == 74
    for frame, picture in enumerate(frames):
        at = min(7 + frame, 68)  # the held frames show the last used one
        if 5 <= frame < 17 or 41 <= frame < 53:
            assert np.array_equal(picture, source[at]), frame
        elif not 24 <= frame < 36:
            assert psnr(picture, source[at]) >= 30, frame
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert float(video.duration * video.time_base) == pytest.approx(74 / 24, abs=1e-6)
        assert abs(float(audio.duration * audio.time_base) - 74 / 24) <= AAC_FRAME / RATE
