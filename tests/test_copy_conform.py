"""A copied clip's conform made in this process (storyboard.edit.copy_conform) holds what the
ffmpeg run it replaces writes: the same video packets on the same clock, the same PCM samples."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest

from storyboard.edit.clip_facts import read_clip
from storyboard.edit.conform import Profile, build_copy_command
from storyboard.edit.copy_conform import copy_in_process, write_copy
from storyboard.media import run_ffmpeg

PROFILE = Profile(width=320, height=180, fps=24)
VIDEO = ("-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-x264-params", "b-adapt=0",
         "-pix_fmt", "yuv420p", "-r", "24")


def render(path: Path, *inputs: str, audio: tuple[str, ...] = ("-c:a", "aac")) -> Path:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                    *inputs, *VIDEO, *audio, "-shortest", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("copy")
    picture = ("-f", "lavfi", "-i", "testsrc2=s=320x180:r=24:d=1.5")
    tone = ("-f", "lavfi", "-i", "sine=f=440:r=48000:d=1.5,volume=4,aformat=channel_layouts=stereo")
    return {
        "sound": render(folder / "sound.mp4", *picture, *tone),
        "late": render(folder / "late.mp4", *picture, "-itsoffset", "0.1", *tone),
        "mute": render(folder / "mute.mp4", *picture, audio=()),
        "cd": render(folder / "cd.mp4", *picture, "-f", "lavfi", "-i",
                     "sine=f=440:r=44100:d=1.5,aformat=channel_layouts=stereo"),
    }


def contents(path: Path) -> tuple[list[tuple], object, np.ndarray]:
    """The video packets (timing and bytes), the video clock and the decoded samples."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        packets = [(p.pts, p.dts, p.duration, hashlib.sha256(bytes(p)).hexdigest())
                   for p in container.demux(video) if p.size]
        clock = (video.time_base, video.start_time, video.duration,
                 bytes(video.codec_context.extradata))
        container.seek(0)
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return packets, clock, samples


@pytest.mark.parametrize("name", ["sound", "mute"])
@pytest.mark.parametrize("frames", [36, 30, 40])
def test_the_segment_holds_what_ffmpeg_writes(clips, tmp_path, name, frames):
    src = clips[name]
    facts = read_clip(src)
    assert copy_in_process(facts, PROFILE, 1.0)
    ours, theirs = tmp_path / "ours.mov", tmp_path / "theirs.mov"
    assert write_copy(src, ours, profile=PROFILE, frames=frames, sound_end=facts.aac_run)
    run_ffmpeg(build_copy_command(src, theirs, profile=PROFILE, frames=frames,
                                  has_audio=facts.has_audio))
    (packets, clock, samples), expected = contents(ours), contents(theirs)
    assert packets == expected[0] and clock == expected[1]
    assert len(samples) == 2 * frames * 2000 and np.array_equal(samples, expected[2])
    assert samples.any() == (name != "mute")


def test_sound_to_resample_scale_or_shift_is_left_to_ffmpeg(clips, tmp_path):
    assert not copy_in_process(read_clip(clips["cd"]), PROFILE, 1.0)
    late = read_clip(clips["late"])
    assert late.has_audio and late.aac_run is None and not copy_in_process(late, PROFILE, 1.0)
    assert not write_copy(clips["late"], tmp_path / "late.mov", profile=PROFILE, frames=36)
    assert not copy_in_process(read_clip(clips["sound"]), PROFILE, 0.5)
    assert not copy_in_process(read_clip(clips["sound"]), Profile(320, 180, channels=6), 1.0)


def test_the_films_pcm_joined_in_process_is_ffmpegs(clips, tmp_path):
    from storyboard.edit.stitch import _join_pcm, build_concat_list, build_pcm_command, stitch
    from tests.test_stitch import DirMemo

    memo = DirMemo(tmp_path / "memo")
    pieces = [(hashlib.sha256(clips[n].read_bytes()).hexdigest(), clips[n])
              for n in ("sound", "mute", "sound", "cd")]
    stats = stitch(pieces, tmp_path / "film.mp4", profile=PROFILE, memo=memo)
    segments = memo.segments()  # sound and mute copied in this process, cd (44.1 kHz) by ffmpeg
    assert stats.conforms_copied == 3 and len(segments) == 3
    listing = tmp_path / "list.ffconcat"
    listing.write_text(build_concat_list(segments))
    run_ffmpeg(build_pcm_command(listing, tmp_path / "theirs.pcm", profile=PROFILE))
    assert _join_pcm(segments, tmp_path / "ours.pcm", PROFILE)
    ours = (tmp_path / "ours.pcm").read_bytes()
    assert len(ours) == 4 * 2000 * (36 + 36 + 36) and ours == (tmp_path / "theirs.pcm").read_bytes()
    assert not _join_pcm([*segments, clips["sound"]], tmp_path / "ours.pcm", PROFILE)  # AAC
