"""A stretch of new footage (``Segment``) as filter chains, and the clip an extension continues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storyboard import media
from storyboard.job import FPS
from storyboard.providers.animatic.graph import FIT, TO_YUV, Graph, background, push_in, repeat_runs, still
from storyboard.providers.animatic.look import Look, camera_runs
from storyboard.providers.animatic.overlays import overlays

AUDIO_RATE = 48_000
SAMPLES_PER_FRAME = AUDIO_RATE // FPS


@dataclass(frozen=True)
class Segment:
    """One stretch of new footage, `frames` long; `skip_first` drops its first frame."""

    width: int
    height: int
    frames: int
    start: Path | None
    end: Path | None
    label: str
    prompt: str
    references: tuple[Path, ...]
    audio: bool
    look: Look
    skip_first: bool = False


def _audio(g: Graph, seg: Segment) -> str:
    """A quiet seeded bed (brown noise under a low tone, about -35 dBFS) or exact silence."""
    end = (
        f"atrim=end_sample={seg.frames * SAMPLES_PER_FRAME},"
        "aformat=sample_fmts=fltp:channel_layouts=stereo"
    )
    if not seg.audio:
        return g.add(f"anullsrc=r={AUDIO_RATE}:cl=stereo,{end}")
    seconds = seg.frames / FPS
    noise = g.add(
        f"anoisesrc=r={AUDIO_RATE}:c=brown:a=0.08:seed={seg.look.noise_seed}:d={seconds + 0.1}"
    )
    tone = g.add(f"sine=f={seg.look.tone}:r={AUDIO_RATE}:d={seconds + 0.1},volume=0.03")
    return g.add(
        "amix=inputs=2:normalize=0:duration=first,pan=stereo|c0=c0|c1=c0,"
        f"afade=t=in:d=0.05,afade=t=out:st={seconds - 0.05:.6f}:d=0.05,{end}",
        noise,
        tone,
    )


def segment_streams(g: Graph, seg: Segment, tmp: Path) -> tuple[str, str, str]:
    """Labels of one segment of new footage: the video as shown, its clean plate, the audio."""
    w, h, n = seg.width, seg.height, seg.frames
    runs = camera_runs(seg.look, w, n, returns=seg.end is not None)
    start = still(g, seg.start, w, h) if seg.start else background(g, seg.look, w, h)
    video = repeat_runs(g, start, runs, n)
    if seg.end:
        # The start fades out over the end picture (overlay is ~40 % cheaper than xfade), all
        # but the final frame, which is the end picture, exact.
        end = repeat_runs(g, still(g, seg.end, w, h), runs, n)
        fading = g.add(f"format=yuva420p,fade=t=out:st=0:d={(n - 1) / FPS:.6f}:alpha=1", video)
        video = g.add(f"overlay=format=yuv420:enable='lt(t,{(n - 1.5) / FPS:.6f})'", end, fading)
    video, clean = g.split(g.add(push_in(seg.look, runs, w, h, n), video))
    video = overlays(g, video, seg, runs, tmp)
    video, clean = (g.add(f"fps={FPS},trim=end_frame={n}", v) for v in (video, clean))
    audio = _audio(g, seg)
    if seg.skip_first:
        video, clean = (g.add("trim=start_frame=1,setpts=PTS-STARTPTS", v) for v in (video, clean))
        audio = g.add(f"atrim=start_sample={SAMPLES_PER_FRAME},asetpts=PTS-STARTPTS", audio)
    return video, clean, audio


def source_streams(g: Graph, clip: Path, w: int, h: int) -> tuple[str, str, str, int]:
    """The clip being extended, as shown and as its clean plate, conformed to w x h and 24 fps,
    and a stereo track of its length; the plate is what it shows when it keeps none."""
    info = media.probe(clip)
    frames = info.frames if round(info.fps, 3) == FPS else round(info.duration * FPS)
    plate = media.clean_plate_index(clip)
    idx = g.input("-i", f"file:{clip}")
    video, clean = (
        g.add(
            f"scale={w}:{h}:{FIT}:{TO_YUV},pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,"
            f"format=yuv420p,fps={FPS},tpad=stop=-1:stop_mode=clone,trim=end_frame={frames}",
            f"{idx}:v:{stream}",
        )
        for stream in (0, 0 if plate is None else plate)
    )
    end = (
        f"apad,atrim=end_sample={frames * SAMPLES_PER_FRAME},"
        "aformat=sample_fmts=fltp:channel_layouts=stereo"
    )
    if info.has_audio:
        return video, clean, g.add(f"aresample={AUDIO_RATE},{end}", f"{idx}:a:0"), frames
    return video, clean, g.add(f"anullsrc=r={AUDIO_RATE}:cl=stereo,{end}"), frames
