"""The film's format (Profile) and the pure ffmpeg command that conforms one clip to it.

Conforming turns any clip (other size, other fps, no audio) into segments the stitcher can join
by stream copy: H.264 with fixed settings, PCM audio of exactly the video's length, in MOV (exact
timestamps in 1/fps and 1/sample-rate; MKV's millisecond clock is not exact at 24 fps).

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
from dataclasses import asdict, dataclass
from pathlib import Path

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

SEGMENT_SUFFIX = ".mov"
PARTS_WHOLE = ("whole",)
PARTS_SPLIT = ("head", "body", "tail")

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


def conform_key(clip_sha: str, profile: Profile, edge: int, *, encoder: str) -> str:
    """Key of a clip's conformed pieces: everything that shapes their bytes.

    That is the clip's bytes, the profile, the split (``edge`` frames), the encoder settings and
    the ffmpeg build (``encoder``, its version line). The frame count and audio presence are not
    in it: both follow from the clip's bytes.
    """
    return digest({
        "v": CONFORM_VERSION, "step": "conform", "clip": clip_sha, "profile": asdict(profile),
        "edge": edge, "video": list(VIDEO_CODEC_ARGS), "audio": "pcm_s16le", "encoder": encoder,
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
) -> list[str]:
    """ffmpeg arguments (without the executable) that conform ``src`` into ``outs``.

    Args:
        src: the clip, any size, fps or audio layout.
        outs: one output path per piece name of ``conform_parts(edge)``.
        profile: the film's format.
        frames: the clip's length in frames at ``profile.fps`` (see ``frames_for``).
        has_audio: whether ``src`` has an audio stream; silence is generated if not.
        edge: frames in the head and tail pieces; 0 conforms the clip as one piece.

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
        ":out_color_matrix=bt709:out_range=tv:flags=bicubic,"
        f"pad={p.width}:{p.height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format={p.pix_fmt},"
        f"tpad=stop_mode=clone:stop=-1,trim=end_frame={frames}"
    )
    total = p.samples_at(frames)
    fmt = f"aformat=sample_fmts=s16:sample_rates={p.sample_rate}:channel_layouts={p.channel_layout}"
    if has_audio:
        audio = f"[0:a:0]aresample={p.sample_rate}:first_pts=0,{fmt},apad,atrim=end_sample={total}"
    else:
        audio = f"anullsrc=r={p.sample_rate}:cl={p.channel_layout},{fmt},atrim=end_sample={total}"
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
        argv += segment_output_args(f"[v_{name}]", f"[a_{name}]", outs[name], profile)
    return argv


def segment_output_args(video: str, audio: str, out: Path, profile: Profile) -> list[str]:
    """Output arguments of one intermediate segment: H.264 + PCM in MOV, with exact clocks.

    Every segment must come out with the same H.264 parameter sets (SPS/PPS), because the film
    keeps only the first segment's: hence the explicit pixel format, which a filter such as
    ``xfade`` would otherwise be free to change (and x264 would switch to a 4:4:4 profile).
    """
    return [
        "-map", video, "-map", audio, *VIDEO_CODEC_ARGS, "-pix_fmt", profile.pix_fmt,
        "-c:a", "pcm_s16le", "-ar", str(profile.sample_rate), "-ac", str(profile.channels),
        "-video_track_timescale", str(profile.fps * 1000), *BITEXACT_ARGS,
        "-f", "mov", str(out),
    ]
