"""A copied clip's conform made in this process with PyAV: no ffmpeg run for the commonest piece.

A film of cuts from one provider is mostly clips whose video is copied (``build_copy_command``):
their H.264 packets go into the segment untouched and only their sound becomes PCM of exactly
the clip's frames. An ffmpeg run for that costs about 60 ms of CPU for an 8 s 720p clip, much of
it starting and probing; here about 48 ms (the demux, the AAC decode and the write), and no
process waits to start. The segment holds the same
packets and the same samples as the ffmpeg run's (its tests compare them), so the film is the
same. Clips whose sound needs more than a format change (another rate or layout, a volume) are
left to ffmpeg (``copy_in_process`` says which).
"""

from __future__ import annotations

import os
from pathlib import Path

from storyboard.edit.clip_facts import ClipFacts
from storyboard.edit.conform import Profile
from storyboard.errors import MediaError

__all__ = ["BLOCK", "copy_in_process", "write_copy"]


def copy_in_process(facts: ClipFacts, profile: Profile, volume: float) -> bool:
    """Whether ``write_copy`` may make the clip's copy conform: full volume, and no sound, or
    AAC at the film's rate and channels in regular packets from time 0 (``ClipFacts.aac_run``,
    as ffmpeg's encoder and so most providers make it), so that only its sample format changes
    and its end is plain (ffmpeg cuts the last packet's padding to the packet's duration)."""
    return volume == 1 and profile.channels in _LAYOUTS and (facts.sound is None or (
        facts.sound == ("aac", profile.sample_rate, profile.channels) and bool(facts.aac_run)))


BLOCK = 8192
"""Samples per PCM packet written (any size holds the same samples; fewer packets, less work)."""


def write_copy(src: Path, out: Path, *, profile: Profile, frames: int,
               sound_end: int | None = None) -> bool:
    """Write ``out`` (MOV) as ``build_copy_command``'s ffmpeg run does: the video packets of
    ``src`` untouched, on a 1/(fps*1000) clock, and its sound (decoded samples up to
    ``sound_end``, its packets' end) as 16-bit PCM of exactly ``frames`` frames (cut, or padded
    with silence).

    Returns False, having written nothing to keep, when the decoded sound is not planar float
    at the film's rate and channels from time 0 (then ffmpeg's run converts it).

    Raises:
        MediaError: the clip cannot be read or the segment written.
    """
    import av  # slow to import; only stitching needs it
    import numpy as np

    rate, channels = profile.sample_rate, profile.channels
    try:
        with av.open(os.fspath(src)) as container:
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            with av.open(os.fspath(out), "w", format="mov",
                         options={"video_track_timescale": str(profile.fps * 1000)},
                         container_options={"fflags": "+bitexact"}) as sink:
                picture = sink.add_stream_from_template(video)
                sound = sink.add_stream("pcm_s16le", rate=rate, layout=_LAYOUTS[channels])
                planes: list[np.ndarray] = []  # the decoded sound, from time 0 on
                for packet in container.demux(*(video, audio) if audio is not None else (video,)):
                    if packet.stream_index == video.index:
                        if packet.size:
                            packet.stream = picture
                            sink.mux(packet)
                        continue
                    for frame in packet.decode():
                        if (frame.format.name != "fltp" or frame.sample_rate != rate
                                or len(frame.layout.channels) != channels
                                or (not planes and frame.pts != 0)):
                            return False
                        planes.append(frame.to_ndarray())
                samples = _pcm(planes, sound_end, profile.samples_at(frames), channels)
                for at in range(0, len(samples), BLOCK):
                    block = av.AudioFrame.from_ndarray(samples[at:at + BLOCK].reshape(1, -1),
                                                       format="s16", layout=_LAYOUTS[channels])
                    block.sample_rate, block.pts = rate, at
                    for packet in sound.encode(block):
                        sink.mux(packet)
                for packet in sound.encode(None):
                    sink.mux(packet)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"cannot copy {src} into {out.name}: {exc}") from exc
    return True


def _pcm(planes: list, end: int | None, total: int, channels: int):  # type: ignore[no-untyped-def]
    """``total`` interleaved 16-bit samples: the decoded float ``planes`` up to sample ``end``,
    converted as swresample does (rounded to nearest, even on ties, then clipped), then
    silence."""
    import numpy as np

    sound = np.concatenate(planes, axis=1) if planes else np.zeros((channels, 0), np.float32)
    used = min(sound.shape[1], total, sound.shape[1] if end is None else end)
    pcm = np.zeros((total, channels), np.int16)
    scaled = np.rint(sound[:, :used].T.astype(np.float32) * np.float32(32768))
    pcm[:used] = np.clip(scaled, -32768, 32767).astype(np.int16)
    return pcm


_LAYOUTS = {1: "mono", 2: "stereo"}
