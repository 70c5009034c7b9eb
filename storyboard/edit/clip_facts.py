"""What a clip holds (``ClipFacts``), read by demuxing it, and whether its video can be copied.

The stitcher copies a clip's H.264 packets into a film of cuts when they already are the film's
video (``copy_blocker``); everything else about a clip it learns here without decoding a frame,
in one demux: its stream's facts and its clean cut points (``clean_cuts``, for the smart cut).
The stitcher keeps them in its memo by the clip's bytes (``facts_memo``), so an unchanged
re-stitch demuxes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from storyboard.errors import MediaError

if TYPE_CHECKING:
    from storyboard.edit.conform import Profile

AAC_FRAME = 1024
"""Samples in one AAC frame, and the AAC encoder's priming delay (one frame)."""

__all__ = ["ClipFacts", "copy_blocker", "clean_cuts", "read_clip"]


@dataclass(frozen=True)
class ClipFacts:
    """What the stitcher needs to know of a clip, read by demuxing it (no decoding).

    Attributes:
        duration: length of the video stream in seconds (as ``media.probe`` reports it).
        frames: video packets, one per frame.
        has_audio: whether the clip has an audio stream.
        codec: the video decoder's name (``h264``).
        width: frame width in pixels.
        height: frame height in pixels.
        pix_fmt: the video's pixel format, or None when unknown.
        square_pixels: the sample aspect ratio is 1:1 (or unset).
        frame_rate: frames per second when every frame lasts exactly as long and the first one
            starts at 0, else None.
        reorders: some packet's decode time differs from its presentation time (B-frames).
        starts_on_idr: the first packet is an H.264 IDR picture (decodable on its own, and
            resets the decoder's reference state, so nothing before it can matter).
        extradata: the codec's out-of-band parameter sets (for H.264, the avcC record holding
            the SPS and PPS).
        x264_options: the ``options:`` line x264 writes into its first picture, if it made it.
        colour: the video's colour tags as FFmpeg numbers (primaries, transfer, matrix, range).
        cuts: the frames (presentation order) that start a closed GOP on an IDR picture, where
            the clip may be cut by copying (``clean_cuts``).
        sound: the first audio stream's codec, sample rate and channels, or None.
        sound_config: that stream's out-of-band configuration (AAC's AudioSpecificConfig).
        aac_run: the samples its packets hold when they are 1024 samples each (the last may be
            shorter) from one frame of priming on, as ffmpeg's AAC encoder makes them (so the
            film's soundtrack may copy them, ``soundtrack``); else None.
    """

    duration: float
    frames: int
    has_audio: bool
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    square_pixels: bool
    frame_rate: Fraction | None
    reorders: bool
    starts_on_idr: bool
    extradata: bytes
    x264_options: str | None = None
    colour: tuple[int, int, int, int] = (2, 2, 2, 0)
    cuts: tuple[int, ...] = ()
    sound: tuple[str, int, int] | None = None
    sound_config: bytes = b""
    aac_run: int | None = None


def read_clip(path: str | os.PathLike[str]) -> ClipFacts:
    """Demux ``path`` once and describe its video stream, its cut points and whether it has audio.

    Raises:
        MediaError: the file is missing, not media, or has no video stream.
    """
    import av  # slow to import; only stitching needs it here

    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{os.fspath(path)} has no video stream")
            video = container.streams.video[0]
            ctx = video.codec_context
            base = video.time_base
            sar = ctx.sample_aspect_ratio
            facts = {
                "has_audio": bool(container.streams.audio), "codec": ctx.name,
                "width": ctx.width, "height": ctx.height, "pix_fmt": ctx.pix_fmt,
                "square_pixels": not sar or sar == 1, "extradata": bytes(ctx.extradata or b""),
                "colour": tuple(int(getattr(ctx, name, unset) or unset) for name, unset in (
                    ("color_primaries", 2), ("color_trc", 2), ("colorspace", 2),
                    ("color_range", 0))),
            }
            audio = container.streams.audio[0] if container.streams.audio else None
            if audio is not None:
                facts["sound"] = (audio.codec_context.name, audio.rate, audio.channels)
                facts["sound_config"] = bytes(audio.codec_context.extradata or b"")
            avcc = facts["extradata"]
            stamps, first, idr = [], b"", []  # idr: (pts, an IDR keyframe), in decode order
            places: list[tuple[int | None, int]] = []  # the audio packets' (pts, duration)
            for packet in container.demux(*(video, audio) if audio is not None else (video,)):
                if audio is not None and packet.stream_index == audio.index:
                    if packet.size:
                        places.append((packet.pts, packet.duration))
                elif packet.size:
                    key = bool(packet.is_keyframe)
                    data = bytes(packet) if key or not first else b""
                    first = first or data
                    stamps.append((packet.pts, packet.dts, packet.duration, key))
                    if packet.pts is not None:
                        idr.append((packet.pts, key and has_idr(data, avcc)))
            declared = video.duration
            rate = video.average_rate or video.guessed_rate or video.base_rate
            run = None if audio is None else aac_run(places, audio.time_base, audio.rate)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"cannot decode {os.fspath(path)}: {exc}") from exc
    frames = len(stamps)
    step = stamps[0][2] if stamps and base is not None else 0  # the first frame's duration
    shown = sorted((pts, duration) for pts, _, duration, _ in stamps if pts is not None)
    constant = bool(step) and len(shown) == frames and declared in (None, frames * step) and all(
        pts == i * step and duration == step for i, (pts, duration) in enumerate(shown)
    )
    if declared is not None and base is not None:
        seconds = float(declared * base)
    else:
        seconds = frames / float(rate) if rate else 0.0
    return ClipFacts(
        duration=seconds, frames=frames,
        frame_rate=1 / (step * base) if constant else None,
        reorders=any(pts != dts for pts, dts, _, _ in stamps),
        starts_on_idr=bool(stamps) and stamps[0][3] and has_idr(first, facts["extradata"]),
        x264_options=_x264_options(first), cuts=clean_cuts(idr), aac_run=run,
        **facts,
    )  # fmt: skip


def aac_run(places: list[tuple[int | None, int]], base: Fraction | None,
            rate: int) -> int | None:
    """The samples in audio packets at ``places`` (pts, duration in ``base``) when packet ``m``
    starts at sample ``1024 (m - 1)`` and all but the last last 1024 samples; else None."""
    if not places or base is None or not rate:
        return None
    num, den = base.numerator * rate, base.denominator  # samples = ticks * num / den
    for m, (pts, duration) in enumerate(places):
        if pts is None or pts * num != (m - 1) * AAC_FRAME * den:
            return None
        if m + 1 < len(places) and duration * num != AAC_FRAME * den:
            return None
    pts, duration = places[-1]
    return (pts + duration) * num // den  # type: ignore[operator]


def clean_cuts(packets: list[tuple[int, bool]]) -> tuple[int, ...]:
    """The frames (presentation order) where a clip may be cut by copying, from its packets'
    ``(pts, is an IDR keyframe)`` in decode order.

    A clean cut point starts a closed GOP: an IDR picture, with every packet before it in decode
    order shown before it and every packet after it shown at or after it. An open GOP (x264's
    ``--open-gop``: a non-IDR I picture whose leading B-frames refer to the GOP before) is none.
    """
    frame_of = {pts: i for i, pts in enumerate(sorted(pts for pts, _ in packets))}
    later_min = [1 << 62] * (len(packets) + 1)  # the earliest presentation time from each on
    for at in range(len(packets) - 1, -1, -1):
        later_min[at] = min(packets[at][0], later_min[at + 1])
    cuts, seen_max = [], None  # seen_max: the latest presentation time before, in decode order
    for at, (pts, idr) in enumerate(packets):
        if idr and (seen_max is None or seen_max < pts) and later_min[at] == pts:
            cuts.append(frame_of[pts])
        seen_max = pts if seen_max is None else max(seen_max, pts)
    return tuple(cuts)


def copy_blocker(facts: ClipFacts, profile: Profile) -> str | None:
    """Why the clip's video cannot be copied into a film of ``profile`` as it is, or None if it can.

    Copying needs H.264 of the film's size and pixel format, square pixels, exactly
    ``profile.fps`` frames a second from time 0, parameter sets out of band (an avcC record,
    which the film can share) and an IDR frame first. B-frames are fine: the concat demuxer
    offsets each clip's decode times with its presentation times, so a clip's packets decode
    after the previous clip's, and the film's edit list absorbs the first clip's decode delay.
    """
    if facts.codec != "h264":
        return f"its video is {facts.codec}, not h264"
    if (facts.width, facts.height) != (profile.width, profile.height):
        return f"it is {facts.width}x{facts.height}, not {profile.width}x{profile.height}"
    if facts.pix_fmt != profile.pix_fmt:
        return f"its pixel format is {facts.pix_fmt}, not {profile.pix_fmt}"
    if not facts.square_pixels:
        return "its pixels are not square"
    if facts.frame_rate != profile.fps:
        return f"it is not exactly {profile.fps} frames a second from time 0"
    if not facts.extradata.startswith(b"\x01"):
        return "its H.264 parameter sets are not out of band (no avcC record)"
    if not facts.starts_on_idr:
        return "it does not start on an IDR frame"
    return None


def has_idr(packet: bytes, avcc: bytes) -> bool:
    """Whether an avcC-framed H.264 packet holds an IDR slice (NAL unit type 5)."""
    if len(avcc) < 5 or avcc[0] != 1:
        return False
    size, at = (avcc[4] & 3) + 1, 0
    while at + size < len(packet):
        length = int.from_bytes(packet[at:at + size], "big")
        if packet[at + size] & 0x1F == 5:
            return True
        at += size + length
    return False


def _x264_options(packet: bytes) -> str | None:
    """The settings x264 wrote into a picture's SEI (``options: cabac=1 ref=3 ...``), if any."""
    at = packet.find(b"x264 - core ")
    if at < 0:
        return None
    text = packet[at:packet.find(b"\0", at)].decode("ascii", "replace")
    return text.partition(" - options: ")[2] or None
