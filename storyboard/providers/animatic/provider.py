"""The animatic provider itself: a job in, a reproducible draft MP4 out (see the package's docstring)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from storyboard import media
from storyboard.job import (
    EXTENSION_SECONDS,
    FPS,
    Capabilities,
    Price,
    RenderContext,
    RenderJob,
    RenderResult,
    frame_size,
)
from storyboard.providers import ProviderSettings
from storyboard.providers.animatic.graph import Graph
from storyboard.providers.animatic.look import look_for
from storyboard.providers.animatic.overlays import MAX_THUMBNAILS
from storyboard.providers.animatic.segment import AUDIO_RATE, Segment, segment_streams, source_streams

QP = 20
X264_THREADS = "2"
"""Fixed, because x264's bitstream depends on its thread count: same bytes on any machine."""


def _encode_args(video: str, clean: str, audio: str, frames: int, dest: Path) -> list[str]:
    """Output options: H.264 + AAC in MP4, every knob fixed so the bytes are reproducible.

    The clean plate is the second video track, disabled (players show the first) and named
    `media.CLEAN_PLATE`. A constant quantiser codes a frame the same in both tracks when its
    pictures are the same and it is an IDR (the first and the last frame are): the ends of
    the clip decode identically whichever track they are taken from.
    """
    return [
        "-map", f"[{video}]", "-map", f"[{audio}]", "-map", f"[{clean}]", "-frames:v", str(frames),
        "-metadata:s:v:1", f"handler_name={media.CLEAN_PLATE}",
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", str(QP), "-threads:v", X264_THREADS,
        "-pix_fmt", "yuv420p", "-r", str(FPS), "-fps_mode", "cfr",
        # An IDR on the last frame keeps the hand-off frame sharp and quick to seek to.
        "-force_key_frames", f"expr:eq(n,{frames - 1})",
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv",
        "-c:a", "aac", "-aac_coder", "fast", "-b:a", "128k", "-ar", str(AUDIO_RATE), "-ac", "2",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart",
        "-f", "mp4", "-y", f"file:{dest}",
    ]  # fmt: skip


class AnimaticProvider:
    """Offline drafts under Veo 3.1's rules: free, quick, reproducible to the byte."""

    name = "animatic"
    default_model = "animatic-veo-3.1"
    key_env: tuple[str, ...] = ()
    Settings = ProviderSettings
    labels_output = True
    render_rate = 0.2
    """Nominal wall seconds per second of 720p output; `plan` measures the real rate from past builds."""

    def __init__(self, settings: ProviderSettings | None = None, **kwargs: Any) -> None:
        self.settings = settings or ProviderSettings()

    def capabilities(self, model: str) -> Capabilities:
        """Veo 3.1's capabilities, whatever the model name: the animatic stands in for it."""
        return Capabilities()

    def price(self, job: RenderJob) -> Price:
        """Always free."""
        return Price(0.0, "USD")

    def render(self, job: RenderJob, dest: Path, ctx: RenderContext) -> RenderResult:
        """Render `job` as a draft MP4 at `dest`.

        A shot is `job.duration` seconds; an extension is the source clip followed by
        EXTENSION_SECONDS continuing from its last frame, the whole extended video as Veo
        returns it. Size from `frame_size`, 24 fps CFR, H.264 (yuv420p, BT.709) + AAC stereo.

        Raises:
            MediaError: ffmpeg failed or an input cannot be decoded.
        """
        ctx.progress("rendering", None)
        w, h = frame_size(job.resolution, job.aspect_ratio)
        refs = tuple(ctx.input_path(d) for d in job.references[:MAX_THUMBNAILS])
        common: dict[str, Any] = dict(
            label=job.label, prompt=job.prompt, references=refs, audio=job.audio,
            look=look_for(job.seed, job.take, job.candidate, job.batch),
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="storyboard-animatic-") as name:
            tmp, g = Path(name), Graph()
            if job.extends:
                clip = ctx.input_path(job.extends)
                src_video, src_clean, src_audio, src_frames = source_streams(g, clip, w, h)
                media.extract_frame(clip, "last", tmp / "last.png")
                # One frame more, dropped after rendering: frame 0 would repeat the source's
                # last frame, a visible hold at the seam.
                seg = Segment(w, h, EXTENSION_SECONDS * FPS + 1, tmp / "last.png", None,
                               skip_first=True, **common)  # fmt: skip
                seg_video, seg_clean, seg_audio = segment_streams(g, seg, tmp)
                video = g.add("concat=n=2:v=1:a=0", src_video, seg_video)
                clean = g.add("concat=n=2:v=1:a=0", src_clean, seg_clean)
                audio = g.add("concat=n=2:v=0:a=1", src_audio, seg_audio)
                frames = src_frames + EXTENSION_SECONDS * FPS
            else:
                first = ctx.input_path(job.first_frame) if job.first_frame else None
                end = ctx.input_path(job.last_frame) if job.last_frame else None
                frames = job.duration * FPS
                seg = Segment(w, h, frames, first, end, **common)
                video, clean, audio = segment_streams(g, seg, tmp)
            args = _encode_args(video, clean, audio, frames, dest)
            media.run_ffmpeg([*g.inputs, "-filter_complex", g.text(), *args])
        return RenderResult(cost=Price(0.0, "USD"))
