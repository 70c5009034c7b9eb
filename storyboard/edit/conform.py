"""The film's format (Profile) and the ffmpeg commands that conform a clip into segments.

Conforming turns any clip (other size, other fps, no audio) into segments the stitcher can join
by stream copy: H.264 with fixed settings, PCM audio of exactly the video's length, in MOV (exact
timestamps in 1/fps and 1/sample-rate; MKV's millisecond clock is not exact at 24 fps).

A clip whose video is already the film's (``copy_blocker`` finds nothing against it) can skip the
encode in a film of cuts: its H.264 packets are copied as they are, B-frames and all, and only its
audio is converted to PCM (``build_copy_command``). The film keeps one set of H.264 parameter sets,
so ``film_setting.py`` decides which clips are copied and encodes the others to match them.

A clip on the timeline is trimmed to ``[in, out)`` in whole frames, then its last used frame is
held (silent), and cut into parts: a head as long as the join before it, a tail as long as the
join after it (each join has its own length), and a body between, itself cut where a text overlay
starts or ends, so that only the overlay's frames carry the text::

    frames:  0 ...... left ............................ N - right ...... N
             | head  |  body  | body + text |   body   |      tail      |
                                                  (held frames, silent) ^

Each piece is its own encode, so each starts on an IDR frame and has an exact frame count: the
bodies are copied into the film untouched, and only the heads and tails are decoded again, to
build the transition windows. This is exact by construction; forcing keyframes into one encode
and cutting it with stream copy would rely on where the demuxer cuts packets, which for PCM
audio is not sample-exact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from storyboard.edit.clip_facts import ClipFacts, copy_blocker, read_clip
from storyboard.edit.versions import CONFORM_VERSION

__all__ = ["ClipFacts", "Profile", "Trim", "build_conform_command", "build_copy_command",
           "conform_key", "copy_blocker", "digest", "frames_for", "piece_bounds", "read_clip",
           "segment_output_args"]

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


@dataclass(frozen=True)
class Trim:
    """Which frames of a clip a piece uses: ``used`` frames from frame ``start``, then the last of
    them held ``hold`` frames (silent); its sound scaled by ``volume``."""

    start: int = 0
    used: int = 0
    hold: int = 0
    volume: float = 1.0

    @property
    def frames(self) -> int:
        return self.used + self.hold


HOLD_ZONE = "q=51"
"""x264's zone for held frames: at the coarsest quantiser the difference from the frame before is
nothing, so every macroblock is skipped and the held frames decode to the very same pixels.
Zones are rate control, so the parameter sets stay the film's."""


def piece_bounds(frames: int, edge: int, right: int | None = None) -> dict[str, tuple[int, int]]:
    """Frame range ``[start, end)`` of each part of a piece of ``frames`` frames whose join before
    it overlaps ``edge`` frames and the one after ``right`` (default ``edge``)."""
    right = edge if right is None else right
    if not edge and not right:
        return {"whole": (0, frames)}
    bounds = {"head": (0, edge)} if edge else {}
    bounds["body"] = (edge, frames - right)
    if right:
        bounds["tail"] = (frames - right, frames)
    return bounds


def hold_args(video_args: Sequence[str], first: int, last: int) -> tuple[str, ...]:
    """``video_args`` with held frames ``first..last`` (of a part) encoded as exact repeats."""
    args = list(video_args)
    if first > last:
        return tuple(args)
    at = args.index("-x264-params")
    args[at + 1] += f":zones={first},{last},{HOLD_ZONE}"
    return tuple(args)


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
    trim: Trim | None = None,
    bounds: dict[str, tuple[int, int]] | None = None,
    drawn: dict[str, str] | None = None,
    seek: int = 0,
) -> list[str]:
    """ffmpeg arguments (without the executable) that conform ``src`` into ``outs``.

    Args:
        src: the clip, any size, fps or audio layout.
        outs: one output path per part to make (a subset of ``bounds``).
        profile: the film's format.
        frames: the piece's length in frames at ``profile.fps`` (see ``frames_for``).
        has_audio: whether ``src`` has an audio stream; silence is generated if not.
        edge: frames in the head and tail parts when ``bounds`` is not given.
        video_args: the H.264 encoder's settings (``VIDEO_CODEC_ARGS`` unless matching others).
        colour: the colour conversion and tags (see ``COLOUR``).
        trim: the frames used and held; default the first ``frames`` frames.
        bounds: each part's frame range (default ``piece_bounds(frames, edge)``).
        drawn: per part, filters drawing text over it (``titles.drawtext``).
        seek: a frame of ``src`` starting a closed GOP, at or before the first frame any part
            takes: the picture is decoded from there (the sound, cheap to decode, from the
            start, as an AAC decode started mid-stream lacks its first frame's overlap). The
            decoded pictures, and so the bytes, are the same; a smart cut's edges decode a GOP
            or two instead of the whole clip.

    Raises:
        ValueError: a part would be empty, or ``outs`` names a part ``bounds`` lacks.
    """
    trim = trim or Trim(0, frames)
    if bounds is None:
        if edge and frames <= 2 * edge:
            raise ValueError(f"{frames} frames leave no body between a {edge}-frame head and tail")
        bounds = piece_bounds(frames, edge)
    if any(end <= start for start, end in bounds.values()):
        raise ValueError(f"a part of {frames} frames would be empty: {bounds}")
    if not outs or not set(outs) <= set(bounds):
        raise ValueError(f"outs must name parts of {sorted(bounds)}, got {sorted(outs)}")
    p = profile
    start = trim.start - seek
    if start < 0:
        raise ValueError(f"cannot seek to frame {seek} for a trim from frame {trim.start}")
    video = (
        "[0:v:0]setpts=PTS-STARTPTS,"
        f"fps={p.fps},"
        f"scale={p.width}:{p.height}:force_original_aspect_ratio=decrease:force_divisible_by=2"
        f":{colour[0]}:flags=bicubic,"
        f"pad={p.width}:{p.height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format={p.pix_fmt},"
        + (f"trim=start_frame={start},setpts=PTS-STARTPTS," if start else "")
        + f"tpad=stop_mode=clone:stop=-1,trim=end_frame={trim.used}"
        + (f",tpad=stop_mode=clone:stop={trim.hold}" if trim.hold else "")
        + (f",{colour[1]}" if colour[1] else "")
    )
    audio = audio_chain(profile, trim, has_audio)
    if seek:
        audio = audio.replace("[0:a:0]", "[1:a:0]")
    names = list(outs)
    graph = [
        f"{video},split={len(names)}" + "".join(f"[vs_{n}]" for n in names),
        f"{audio},asplit={len(names)}" + "".join(f"[as_{n}]" for n in names),
    ]
    argv = ["-y", "-i", str(src)]
    if seek:  # to the keyframe at or before half a frame past it, every frame kept from there
        argv = ["-y", "-noaccurate_seek", "-ss", f"{(seek + 0.5) / p.fps:.6f}", "-i", str(src),
                "-i", str(src)]
    for name in names:
        start, end = bounds[name]
        text = (drawn or {}).get(name)
        graph.append(f"[vs_{name}]trim=start_frame={start}:end_frame={end},"
                     f"setpts=PTS-STARTPTS{',' + text if text else ''}[v_{name}]")
        graph.append(f"[as_{name}]atrim=start_sample={p.samples_at(start)}"
                     f":end_sample={p.samples_at(end)},asetpts=PTS-STARTPTS[a_{name}]")
    argv += ["-filter_complex", ";".join(graph)]
    for name in names:
        start, end = bounds[name]
        args = hold_args(video_args, max(1, trim.used - start), end - start - 1) \
            if trim.hold else video_args
        argv += segment_output_args(f"[v_{name}]", f"[a_{name}]", outs[name], profile, args)
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
    src: Path, out: Path, *, profile: Profile, frames: int, has_audio: bool, volume: float = 1.0
) -> list[str]:
    """ffmpeg arguments that conform ``src`` into the one piece ``out`` without re-encoding video.

    The H.264 packets are copied untouched (retimed to the segment clock, which is exact for a
    clip ``copy_blocker`` accepts); the audio becomes PCM of exactly ``frames`` frames' length,
    padded with silence or cut, or is all silence when ``src`` has none, scaled by ``volume``.
    """
    chain = audio_chain(profile, Trim(0, frames, 0, volume), has_audio)
    return [
        "-y", "-i", str(src), "-filter_complex", f"{chain}[a]",
        "-map", "0:v:0", "-map", "[a]", "-c:v", "copy",
        "-c:a", "pcm_s16le", "-ar", str(profile.sample_rate), "-ac", str(profile.channels),
        "-video_track_timescale", str(profile.fps * 1000), *BITEXACT_ARGS,
        "-f", "mov", str(out),
    ]  # fmt: skip


def audio_chain(profile: Profile, trim: Trim, has_audio: bool) -> str:
    """The filter chain giving PCM of exactly the trimmed piece's frames: the used frames' sound
    (padded with silence past the clip's end) scaled by the volume, then silence under the hold."""
    p = profile
    fmt = f"aformat=sample_fmts=s16:sample_rates={p.sample_rate}:channel_layouts={p.channel_layout}"
    total = p.samples_at(trim.frames)
    if not has_audio or trim.volume == 0:
        return f"anullsrc=r={p.sample_rate}:cl={p.channel_layout},{fmt},atrim=end_sample={total}"
    begin = p.samples_at(trim.start)
    chain = (f"[0:a:0]aresample={p.sample_rate}:first_pts=0,{fmt},"
             + (f"atrim=start_sample={begin},asetpts=PTS-STARTPTS," if begin else "")
             + f"apad,atrim=end_sample={p.samples_at(trim.start + trim.used) - begin}")
    if trim.volume != 1:
        chain += f",volume={trim.volume!r}:precision=fixed,{fmt}"
    if trim.hold:
        chain += f",apad,atrim=end_sample={total}"
    return chain
