"""The film's format (Profile), what a clip holds (ClipFacts), and the ffmpeg commands that conform it.

Conforming turns any clip (other size, other fps, no audio) into segments the stitcher can join
by stream copy: H.264 with fixed settings, PCM audio of exactly the video's length, in MOV (exact
timestamps in 1/fps and 1/sample-rate; MKV's millisecond clock is not exact at 24 fps).

A clip whose video is already the film's (``copy_blocker`` finds nothing against it) can skip the
encode in a film of cuts: its H.264 packets are copied as they are, B-frames and all, and only its
audio is converted to PCM (``build_copy_command``). The film keeps one set of H.264 parameter sets,
so ``film_setting.py`` decides which clips are copied and encodes the others to match them.

A clip is conformed into one piece (``whole``) for cuts, or three pieces for crossfades and fades::

    frames:  0 ......... edge ................. N - edge ........ N
             |   head    |         body         |      tail       |

Each piece is its own encode, so each starts on an IDR frame and has an exact frame count: the
bodies are copied into the film untouched, and only the heads and tails are decoded again, to
build the transition windows. This is exact by construction; forcing keyframes into one encode
and cutting it with stream copy would rely on where the demuxer cuts packets, which for PCM
audio is not sample-exact.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

from storyboard.errors import MediaError

CONFORM_VERSION = 1
"""Bump when the conform or window commands change in a way the settings below do not show."""

X264_PARAMS = "bframes=0:threads=4:lookahead-threads=1:sliced-threads=0"
"""No B-frames: every packet's dts equals its pts, so joined segments never reorder across a join.

A fixed thread count keeps x264's output identical on every machine (its frame threading shapes
the bitstream), which the film's bit-exact promise needs.
"""

VIDEO_CODEC_ARGS = (
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-x264-params", X264_PARAMS,
    "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
)  # fmt: skip
"""H.264 settings shared by conforms and windows: joined segments must have identical SPS/PPS."""

BITEXACT_ARGS = ("-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                 "-map_metadata", "-1", "-map_chapters", "-1")  # fmt: skip
"""Output flags that keep ffmpeg's version, dates and source tags out of the bytes."""

COLOUR = ("out_color_matrix=bt709:out_range=tv", "")
"""How a conform converts and tags the picture: swscale's output matrix and range, then a filter
that sets the frames' colour tags ("" keeps the encoder's own: ``VIDEO_CODEC_ARGS`` tags BT.709)."""

SEGMENT_SUFFIX = ".mov"
PARTS_WHOLE = ("whole",)
PARTS_SPLIT = ("head", "body", "tail")

VideoMode = Literal["copy", "match", "encode"]
"""How a conform makes its video: ``copy`` the clip's H.264 packets, ``match`` (encode them with
the copied clips' encoder setting, so the film keeps one set of parameter sets), or ``encode``
them with the stitcher's own setting (``VIDEO_CODEC_ARGS``)."""

_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 6: "5.1", 8: "7.1"}


@dataclass(frozen=True)
class Profile:
    """The film's format: every conformed clip, window and the film itself share it."""

    width: int
    height: int
    fps: int = 24
    pix_fmt: str = "yuv420p"
    sample_rate: int = 48000
    channels: int = 2

    def __post_init__(self) -> None:
        for name in ("width", "height", "fps", "sample_rate", "channels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Profile.{name} must be positive, got {getattr(self, name)}")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"Profile size must be even for H.264, got {self.width}x{self.height}")

    @property
    def channel_layout(self) -> str:
        """ffmpeg's name for the channel layout (``stereo`` for 2 channels)."""
        return _LAYOUTS.get(self.channels, f"{self.channels}c")

    def samples_at(self, frame: int) -> int:
        """Audio sample index at the start of video frame ``frame``, rounded to the nearest sample.

        Every boundary is placed by this one function, so segment lengths always add up to the
        clip's length and audio never drifts from video (exact when ``sample_rate / fps`` is whole,
        as for 48 kHz at 24, 25, 30 or 60 fps; otherwise within half a sample per boundary).
        """
        return (2 * frame * self.sample_rate + self.fps) // (2 * self.fps)


def frames_for(seconds: float, fps: int) -> int:
    """Whole frames nearest to ``seconds`` at ``fps``: the stitcher never cuts between frames."""
    return round(seconds * fps)


def conform_parts(edge: int) -> tuple[str, ...]:
    """Names of the pieces a clip is conformed into: one for cuts, head/body/tail otherwise."""
    return PARTS_SPLIT if edge else PARTS_WHOLE


def digest(fields: dict[str, object]) -> str:
    """sha256 of the canonical JSON of ``fields`` (sorted keys, no spaces)."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def conform_key(
    clip_sha: str,
    profile: Profile,
    edge: int,
    *,
    encoder: str,
    mode: VideoMode = "encode",
    video_args: Sequence[str] = VIDEO_CODEC_ARGS,
    colour: tuple[str, str] = COLOUR,
) -> str:
    """Key of a clip's conformed pieces: everything that shapes their bytes.

    That is the clip's bytes, the profile, the split (``edge`` frames), how the video is made
    (``mode``: copied, or converted to ``colour`` and encoded with ``video_args``) and the
    ffmpeg build (``encoder``, its version line). The frame count and audio presence are not in
    it: both follow from the clip's bytes.
    """
    video = ["copy"] if mode == "copy" else [*video_args, *([] if colour == COLOUR else colour)]
    return digest({
        "v": CONFORM_VERSION, "step": "conform", "clip": clip_sha, "profile": asdict(profile),
        "edge": edge, "mode": mode, "video": video, "audio": "pcm_s16le", "encoder": encoder,
    })


def piece_bounds(frames: int, edge: int) -> dict[str, tuple[int, int]]:
    """Frame range ``[start, end)`` of each piece of a clip of ``frames`` frames."""
    if not edge:
        return {"whole": (0, frames)}
    return {"head": (0, edge), "body": (edge, frames - edge), "tail": (frames - edge, frames)}


def build_conform_command(
    src: Path,
    outs: dict[str, Path],
    *,
    profile: Profile,
    frames: int,
    has_audio: bool,
    edge: int = 0,
    video_args: Sequence[str] = VIDEO_CODEC_ARGS,
    colour: tuple[str, str] = COLOUR,
) -> list[str]:
    """ffmpeg arguments (without the executable) that conform ``src`` into ``outs``.

    Args:
        src: the clip, any size, fps or audio layout.
        outs: one output path per piece name of ``conform_parts(edge)``.
        profile: the film's format.
        frames: the clip's length in frames at ``profile.fps`` (see ``frames_for``).
        has_audio: whether ``src`` has an audio stream; silence is generated if not.
        edge: frames in the head and tail pieces; 0 conforms the clip as one piece.
        video_args: the H.264 encoder's settings (``VIDEO_CODEC_ARGS`` unless matching others).
        colour: the colour conversion and tags (see ``COLOUR``).

    Raises:
        ValueError: the clip is too short to give the body at least one frame.
    """
    if edge and frames <= 2 * edge:
        raise ValueError(f"{frames} frames leave no body between a {edge}-frame head and tail")
    bounds = piece_bounds(frames, edge)
    if set(outs) != set(bounds):
        raise ValueError(f"outs must name exactly {sorted(bounds)}, got {sorted(outs)}")
    p = profile
    video = (
        "[0:v:0]setpts=PTS-STARTPTS,"
        f"fps={p.fps},"
        f"scale={p.width}:{p.height}:force_original_aspect_ratio=decrease:force_divisible_by=2"
        f":{colour[0]}:flags=bicubic,"
        f"pad={p.width}:{p.height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format={p.pix_fmt},"
        f"tpad=stop_mode=clone:stop=-1,trim=end_frame={frames}"
        + (f",{colour[1]}" if colour[1] else "")
    )
    audio = _audio_chain(profile, frames, has_audio)
    names = list(bounds)
    if len(names) == 1:
        graph = [f"{video}[v_{names[0]}]", f"{audio}[a_{names[0]}]"]
    else:
        graph = [
            f"{video},split={len(names)}" + "".join(f"[vs_{n}]" for n in names),
            f"{audio},asplit={len(names)}" + "".join(f"[as_{n}]" for n in names),
        ]
        for name, (start, end) in bounds.items():
            graph.append(f"[vs_{name}]trim=start_frame={start}:end_frame={end},"
                         f"setpts=PTS-STARTPTS[v_{name}]")
            graph.append(f"[as_{name}]atrim=start_sample={p.samples_at(start)}"
                         f":end_sample={p.samples_at(end)},asetpts=PTS-STARTPTS[a_{name}]")
    argv = ["-y", "-i", str(src), "-filter_complex", ";".join(graph)]
    for name in names:
        argv += segment_output_args(f"[v_{name}]", f"[a_{name}]", outs[name], profile, video_args)
    return argv


def segment_output_args(
    video: str, audio: str, out: Path, profile: Profile,
    video_args: Sequence[str] = VIDEO_CODEC_ARGS,
) -> list[str]:
    """Output arguments of one intermediate segment: H.264 + PCM in MOV, with exact clocks.

    Every segment must come out with the same H.264 parameter sets (SPS/PPS), because the film
    keeps only the first segment's: hence the explicit pixel format, which a filter such as
    ``xfade`` would otherwise be free to change (and x264 would switch to a 4:4:4 profile).
    """
    return [
        "-map", video, "-map", audio, *video_args, "-pix_fmt", profile.pix_fmt,
        "-c:a", "pcm_s16le", "-ar", str(profile.sample_rate), "-ac", str(profile.channels),
        "-video_track_timescale", str(profile.fps * 1000), *BITEXACT_ARGS,
        "-f", "mov", str(out),
    ]


def build_copy_command(
    src: Path, out: Path, *, profile: Profile, frames: int, has_audio: bool
) -> list[str]:
    """ffmpeg arguments that conform ``src`` into the one piece ``out`` without re-encoding video.

    The H.264 packets are copied untouched (retimed to the segment clock, which is exact for a
    clip ``copy_blocker`` accepts); the audio becomes PCM of exactly ``frames`` frames' length,
    padded with silence or cut, or is all silence when ``src`` has none.
    """
    return [
        "-y", "-i", str(src), "-filter_complex", f"{_audio_chain(profile, frames, has_audio)}[a]",
        "-map", "0:v:0", "-map", "[a]", "-c:v", "copy",
        "-c:a", "pcm_s16le", "-ar", str(profile.sample_rate), "-ac", str(profile.channels),
        "-video_track_timescale", str(profile.fps * 1000), *BITEXACT_ARGS,
        "-f", "mov", str(out),
    ]  # fmt: skip


def _audio_chain(profile: Profile, frames: int, has_audio: bool) -> str:
    """The filter chain giving PCM audio of exactly ``frames`` video frames (silence if none)."""
    p = profile
    total = p.samples_at(frames)
    fmt = f"aformat=sample_fmts=s16:sample_rates={p.sample_rate}:channel_layouts={p.channel_layout}"
    if has_audio:
        return f"[0:a:0]aresample={p.sample_rate}:first_pts=0,{fmt},apad,atrim=end_sample={total}"
    return f"anullsrc=r={p.sample_rate}:cl={p.channel_layout},{fmt},atrim=end_sample={total}"


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


def read_clip(path: str | os.PathLike[str]) -> ClipFacts:
    """Demux ``path`` once and describe its video stream and whether it has audio.

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
            stamps, first = [], b""
            for packet in container.demux(video):
                if packet.size:
                    first = first or bytes(packet)
                    stamps.append((packet.pts, packet.dts, packet.duration, packet.is_keyframe))
            declared = video.duration
            rate = video.average_rate or video.guessed_rate or video.base_rate
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
        starts_on_idr=bool(stamps) and stamps[0][3] and _has_idr(first, facts["extradata"]),
        x264_options=_x264_options(first),
        **facts,
    )  # fmt: skip


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


def _has_idr(packet: bytes, avcc: bytes) -> bool:
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
