"""The animatic provider: an offline, deterministic ffmpeg draft that stands in for Veo 3.1.

It enforces Veo 3.1's capabilities, so a board that drafts will also generate, and renders a
clip that honours the shot: exact duration, size and 24 fps; the first-frame image on frame 0
and the last-frame image on the last frame, crossfading between them; a slow push-in and a
palette chosen by the seed and the take; the shot id, the prompt and the reference images as
overlays kept off the first and last frames; a quiet seeded audio bed or a silent track. Same
job, same bytes.

The overlays are for the eye only: the clip keeps a second, disabled video track, its clean
plate (`media.CLEAN_PLATE`), the same footage without them, and every frame handed to another
shot (`continues`, `first_frame`, `last_frame`, a reference, at any time) is extracted from
it. A shot that starts on a frame of another never inherits its label, caption or insets.

The filter graph of a shot::

    first-frame image or seeded background ─┐                       ┌─ overlays ─ fps ─ H.264 (shown)
                                            ├─ crossfade ─ push-in ─┤
    last-frame image (when given) ──────────┘                       └─ fps ─ H.264 (clean plate)
    seeded brown noise and tone, or silence ──────────────────────────────────────────── AAC

Pictures are letterboxed (scaled to fit, padded black), never cropped, so nothing of them is
lost, and a picture of the clip's own size is used pixel for pixel. Work is done once per run
of identical frames, not per frame: see `camera_runs`.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import re
import tempfile
import textwrap
from dataclasses import dataclass
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
from storyboard.sniff import sniff

FONT = Path(__file__).resolve().parent.parent / "fonts" / "DejaVuSans.ttf"
"""Shipped with the package: drawtext finds no font on a bare machine."""
OVERLAY_MARGIN = 0.5
"""Seconds at each end kept free of overlays, so the handed-off frames are clean pictures."""
OVERLAY_FADE = 0.25
_GOLDEN = 0.381966
"""2 - phi, in turns: hue steps of this size spread takes evenly round the colour wheel."""
_FOCUS_CORNERS = ((0.15, 0.2), (0.75, 0.2), (0.75, 0.7), (0.15, 0.7))
QP = 20
X264_THREADS = "2"
"""Fixed, because x264's bitstream depends on its thread count: same bytes on any machine."""
AUDIO_RATE = 48_000
SAMPLES_PER_FRAME = AUDIO_RATE // FPS
CAPTION_LINES = 3
MAX_THUMBNAILS = 3

# bitexact: swscale's SIMD paths may otherwise round differently from one CPU to another.
_SWS = "accurate_rnd+full_chroma_int+bitexact"
_TO_YUV = f"out_color_matrix=bt709:out_range=tv:flags=bicubic+{_SWS}"
_FIT = "force_original_aspect_ratio=decrease:force_divisible_by=2"
_FILTER_SPECIALS = re.compile(r"([\\'\[\],;])")
Runs = list[tuple[int, int]]


@dataclass(frozen=True)
class Look:
    """What the seed and take decide: background, camera move and audio bed (fractions of the frame)."""

    colors: tuple[str, str]
    gradient: tuple[float, float, float, float]
    boxes: tuple[tuple[float, float, float, float], ...]
    zoom: float
    """Push-in depth: 0.05 ends (or peaks) 5 % closer."""
    focus: tuple[float, float]
    tone: float
    noise_seed: int


def look_for(seed: int | None, take: int = 1, candidate: int = 1, batch: int = 0) -> Look:
    """The look for `seed` (0 when None), `take`, `candidate` and `batch`, a pure function of them.

    Take 1 is the seed's own look. Every other take, candidate (storyboard.takes) and forced batch
    draws its camera move, background and audio afresh, and turns the palette's hue by the golden
    angle per step, so take 2 (or candidate 2) sits 0.38 of a turn from take 1 however the hash falls,
    and its push-in heads for the next corner.
    """
    base = hashlib.sha256(f"storyboard-animatic:{seed or 0}".encode()).digest()
    extra = "" if (candidate, batch) == (1, 0) else f":c{candidate}:b{batch}"
    h = base if (take, extra) == (1, "") else \
        hashlib.sha256(f"storyboard-animatic:{seed or 0}:{take}{extra}".encode()).digest()
    take += candidate - 1 + batch

    def unit(i: int) -> float:
        return h[i] / 255

    def color(hue: float, value: float) -> str:
        rgb = colorsys.hsv_to_rgb(hue % 1, 0.55, value)
        return "0x" + "".join(f"{round(c * 255):02x}" for c in rgb)

    hue = base[0] / 255 + _GOLDEN * (take - 1)
    # The push-in heads for a corner region, the next one round (clockwise) for each take.
    corner = _FOCUS_CORNERS[(base[8] + take - 1) % 4]
    return Look(
        colors=(color(hue, 0.35 + 0.3 * unit(1)), color(hue + 0.12 + 0.2 * unit(2), 0.85)),
        gradient=(unit(3) * 0.3, unit(4) * 0.3, 0.7 + unit(5) * 0.3, 0.7 + unit(6) * 0.3),
        boxes=tuple(
            (0.05 + 0.6 * unit(i), 0.1 + 0.5 * unit(i + 1), 0.1 + 0.25 * unit(i + 2),
             0.1 + 0.3 * unit(i + 3))
            for i in (10, 14, 18)
        ),
        zoom=0.04 + 0.04 * unit(7),
        focus=(corner[0] + 0.1 * unit(8), corner[1] + 0.1 * unit(9)),
        tone=(55.0, 61.74, 65.41, 73.42, 82.41, 98.0)[h[22] % 6],
        noise_seed=int.from_bytes(h[23:27], "big"),
    )


def filter_value(value: str) -> str:
    """Quote `value` (a path) as an ffmpeg filtergraph option value, whatever it holds.

    Two parsers unquote it in turn: the graph parser (backslashes) and then the option
    parser (single quotes).
    """
    return _FILTER_SPECIALS.sub(r"\\\1", "'" + value.replace("'", "'\\''") + "'")


def caption_lines(prompt: str, columns: int) -> list[str]:
    """The prompt wrapped to `columns`, cut to CAPTION_LINES lines with an ellipsis."""
    lines = textwrap.wrap(" ".join(prompt.split()), width=max(columns, 10)) or [""]
    if len(lines) > CAPTION_LINES:
        lines = lines[:CAPTION_LINES]
        lines[-1] = lines[-1][: max(columns - 1, 1)].rstrip() + "…"
    return lines


def camera_runs(look: Look, width: int, frames: int, returns: bool) -> Runs:
    """The clip as runs of identical frames: (zoom level, first frame); level k crops 2k px.

    Each run is blended, scaled and captioned once, and `fps` repeats it: several times less
    work than per frame (zoompan, or scale with eval=frame alone), and repeated frames cost
    the encoder next to nothing. The push-in eases in from level 0 on frame 0, so the first
    frame is the untouched picture. When `returns` (a last frame is given) it rises and falls
    back to 0 on the final frame, and the crossfade changes the picture on twos (every other
    frame, as drawn animation does), the final frame alone: the end picture, unblended.
    Each frame of an overlay fade is a run too.
    """
    levels = max(1, round(look.zoom * width / 2))
    last = max(frames - 1, 1)
    runs: Runs = []
    for n in range(frames):
        u = math.pi * (n - n % 2 if returns and n < last else n) / last
        level = round(levels * (math.sin(u) if returns else (1 - math.cos(u)) / 2))
        if (
            not runs
            or runs[-1][0] != level
            or (returns and (n % 2 == 0 or n == last))
            or _opacity(n, frames) != _opacity(n - 1, frames)
        ):
            runs.append((level, n))
    return runs


def _opacity(n: int, frames: int) -> float:
    """Overlay opacity on frame n, as `_fade_alpha` computes it in ffmpeg."""
    t, a, b = n / FPS, OVERLAY_MARGIN, (frames - 1) / FPS - OVERLAY_MARGIN
    return max(0.0, min(1.0, (t - a) / OVERLAY_FADE, (b - t) / OVERLAY_FADE))


def _fade_alpha(t_end: float) -> str:
    a, b = OVERLAY_MARGIN, t_end - OVERLAY_MARGIN
    return f"max(0,min(1,min((t-{a})/{OVERLAY_FADE},({b}-t)/{OVERLAY_FADE})))"


def _lookup(var: str, keys: list[int], values: list[int]) -> str:
    """An ffmpeg expression worth values[i] when `var` is keys[i] (ascending integers).

    A balanced tree of ifs: a flat sum of eq() terms breaks ffmpeg's parser when long.
    """

    def tree(lo: int, hi: int) -> str:
        if hi - lo == 1:
            return str(values[lo])
        mid = (lo + hi) // 2
        return f"if(lt({var},{keys[mid] - 0.5}),{tree(lo, mid)},{tree(mid, hi)})"

    return tree(0, len(values))


@dataclass(frozen=True)
class _Segment:
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


class _Graph:
    """Collects ffmpeg inputs and filter chains; labels are generated, so chains compose."""

    def __init__(self) -> None:
        self.inputs: list[str] = []
        self.chains: list[str] = []

    def input(self, *args: str) -> str:
        """Add an input (its options, "-i", its path); returns its index."""
        self.inputs.extend(args)
        return str(self.inputs.count("-i") - 1)

    def image(self, path: Path) -> str:
        """Add a still, PNG or JPEG by content: cache objects have no extension."""
        demuxer = "jpeg_pipe" if sniff(path) == "jpeg" else "png_pipe"
        return self.input("-f", demuxer, "-i", f"file:{path}")

    def add(self, chain: str, *sources: str) -> str:
        """Append `chain` fed by `sources` (labels or "N:v"); returns its output label."""
        label = f"s{len(self.chains)}"
        self.chains.append("".join(f"[{s}]" for s in sources) + chain + f"[{label}]")
        return label

    def split(self, source: str) -> tuple[str, str]:
        """Two copies of the video `source`."""
        label = f"s{len(self.chains)}"
        self.chains.append(f"[{source}]split=2[{label}a][{label}b]")
        return f"{label}a", f"{label}b"

    def text(self) -> str:
        """The -filter_complex argument."""
        return f"sws_flags=bicubic+{_SWS};" + ";".join(self.chains)


def _still(g: _Graph, path: Path, w: int, h: int) -> str:
    """One frame: a picture letterboxed into w x h, as BT.709 yuv420p."""
    return g.add(
        f"scale={w}:{h}:{_FIT}:{_TO_YUV},pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p",
        f"{g.image(path)}:v",
    )


def _background(g: _Graph, look: Look, w: int, h: int) -> str:
    """One frame: a seeded gradient with a few translucent blocks."""
    x0, y0, x1, y1 = look.gradient
    boxes = "".join(
        f",drawbox=x={round(bx * w)}:y={round(by * h)}:w={round(bw * w)}:h={round(bh * h)}"
        f":color={'white' if i % 2 else 'black'}@0.18:t=fill"
        for i, (bx, by, bw, bh) in enumerate(look.boxes)
    )
    return g.add(
        f"gradients=s={w}x{h}:c0={look.colors[0]}:c1={look.colors[1]}:n=2:seed=0:speed=0"
        f":x0={round(x0 * w)}:y0={round(y0 * h)}:x1={round(x1 * w)}:y1={round(y1 * h)}:r={FPS},"
        f"trim=end_frame=1,scale={_TO_YUV},format=yuv420p{boxes}"
    )


def _runs(g: _Graph, still: str, runs: Runs, frames: int) -> str:
    """One copy of a one-frame stream per run, stamped with the run's first frame number."""
    # A sentinel frame at `frames` closes the last run; it is trimmed after `fps`.
    starts = [start for _, start in runs] + [frames]
    return g.add(
        f"loop=loop={len(runs)}:size=1:start=0,settb=1/{FPS},"
        f"setpts='{_lookup('N', list(range(len(starts))), starts)}'",
        still,
    )


def _push_in(look: Look, runs: Runs, w: int, h: int, frames: int) -> str:
    """Scale up and crop back each run's picture to its zoom level."""
    starts = [start for _, start in runs] + [frames]
    widths = [w + 2 * k for k, _ in runs] + [w]
    heights = [2 * round(h * sw / w / 2) for sw in widths]
    # Even offsets: yuv420p crops land on whole chroma samples.
    xs = [int((sw - w) * look.focus[0]) & ~1 for sw in widths]
    ys = [int((sh - h) * look.focus[1]) & ~1 for sh in heights]
    # Keyed on the stamp, not on `n`: scale counts frames from 1 where crop counts from 0.
    at = f"t*{FPS}"
    return (
        f"scale=w='{_lookup(at, starts, widths)}':h='{_lookup(at, starts, heights)}'"
        f":eval=frame:flags=bilinear+{_SWS},"
        f"crop={w}:{h}:x='{_lookup(at, starts, xs)}':y='{_lookup(at, starts, ys)}'"
    )


def _overlays(g: _Graph, base: str, seg: _Segment, runs: Runs, tmp: Path) -> str:
    """Shot id, wrapped prompt and reference thumbnails, faded in and out between the ends."""
    w, h, n = seg.width, seg.height, seg.frames
    t_end = (n - 1) / FPS
    window = f"enable='between(t,{OVERLAY_MARGIN},{t_end - OVERLAY_MARGIN:.6f})'"
    unit = min(w, h)
    size = max(12, unit // 26)
    texts = [
        ("label", seg.label, max(14, unit // 18), f"x={unit // 30}:y={unit // 30}"),
        ("caption", "\n".join(caption_lines(seg.prompt, int(w * 0.86 / (size * 0.55)))), size,
         f"x=(w-text_w)/2:y=h-text_h-{unit // 18}:text_align=C"),
    ]  # fmt: skip
    parts = []
    for name, text, fontsize, place in texts:
        if not text.strip():
            continue
        # Text goes through a file, so nothing in a prompt can break the filter syntax.
        (tmp / name).write_text(text, encoding="utf-8")
        parts.append(
            f"drawtext=fontfile={filter_value(str(FONT))}:textfile={filter_value(str(tmp / name))}"
            f":expansion=none:fontsize={fontsize}:fontcolor=white:box=1:boxcolor=black@0.55"
            f":boxborderw={max(4, fontsize // 3)}:line_spacing={fontsize // 4}:{place}"
            f":alpha='{_fade_alpha(t_end)}':{window}"
        )
    out = g.add(",".join(parts), base) if parts else base
    refs = seg.references[:MAX_THUMBNAILS]
    if not refs:
        return out
    # Thumbnails are laid out once on a transparent strip, then faded and overlaid as one.
    box_w, box_h, gap, margin = w // 5 + 4, h // 6 + 4, unit // 60, unit // 30
    strip = g.add(
        f"color=c=black@0:s={box_w}x{len(refs) * (box_h + gap) - gap}:r={FPS},"
        "trim=end_frame=1,format=yuva420p"
    )
    for i, ref in enumerate(refs):
        thumb = g.add(
            f"scale=w={box_w - 4}:h={box_h - 4}:{_FIT}:{_TO_YUV},"
            "pad=iw+4:ih+4:2:2:color=white,format=yuva420p",
            f"{g.image(ref)}:v",
        )
        strip = g.add(f"overlay=x=W-w:y={i * (box_h + gap)}:format=auto", strip, thumb)
    strip = g.add(
        f"format=yuva420p,fade=t=in:st={OVERLAY_MARGIN}:d={OVERLAY_FADE}:alpha=1,"
        f"fade=t=out:st={t_end - OVERLAY_MARGIN - OVERLAY_FADE:.6f}:d={OVERLAY_FADE}:alpha=1",
        _runs(g, strip, runs, n),
    )
    return g.add(f"overlay=x=W-w-{margin}:y={margin}:format=yuv420:{window}", out, strip)


def _audio(g: _Graph, seg: _Segment) -> str:
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


def _segment(g: _Graph, seg: _Segment, tmp: Path) -> tuple[str, str, str]:
    """Labels of one segment of new footage: the video as shown, its clean plate, the audio."""
    w, h, n = seg.width, seg.height, seg.frames
    runs = camera_runs(seg.look, w, n, returns=seg.end is not None)
    start = _still(g, seg.start, w, h) if seg.start else _background(g, seg.look, w, h)
    video = _runs(g, start, runs, n)
    if seg.end:
        # The start fades out over the end picture (overlay is ~40 % cheaper than xfade), all
        # but the final frame, which is the end picture, exact.
        end = _runs(g, _still(g, seg.end, w, h), runs, n)
        fading = g.add(f"format=yuva420p,fade=t=out:st=0:d={(n - 1) / FPS:.6f}:alpha=1", video)
        video = g.add(f"overlay=format=yuv420:enable='lt(t,{(n - 1.5) / FPS:.6f})'", end, fading)
    video, clean = g.split(g.add(_push_in(seg.look, runs, w, h, n), video))
    video = _overlays(g, video, seg, runs, tmp)
    video, clean = (g.add(f"fps={FPS},trim=end_frame={n}", v) for v in (video, clean))
    audio = _audio(g, seg)
    if seg.skip_first:
        video, clean = (g.add("trim=start_frame=1,setpts=PTS-STARTPTS", v) for v in (video, clean))
        audio = g.add(f"atrim=start_sample={SAMPLES_PER_FRAME},asetpts=PTS-STARTPTS", audio)
    return video, clean, audio


def _source(g: _Graph, clip: Path, w: int, h: int) -> tuple[str, str, str, int]:
    """The clip being extended, as shown and as its clean plate, conformed to w x h and 24 fps,
    and a stereo track of its length; the plate is what it shows when it keeps none."""
    info = media.probe(clip)
    frames = info.frames if round(info.fps, 3) == FPS else round(info.duration * FPS)
    plate = media.clean_plate_index(clip)
    idx = g.input("-i", f"file:{clip}")
    video, clean = (
        g.add(
            f"scale={w}:{h}:{_FIT}:{_TO_YUV},pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,"
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
            tmp, g = Path(name), _Graph()
            if job.extends:
                clip = ctx.input_path(job.extends)
                src_video, src_clean, src_audio, src_frames = _source(g, clip, w, h)
                media.extract_frame(clip, "last", tmp / "last.png")
                # One frame more, dropped after rendering: frame 0 would repeat the source's
                # last frame, a visible hold at the seam.
                seg = _Segment(w, h, EXTENSION_SECONDS * FPS + 1, tmp / "last.png", None,
                               skip_first=True, **common)  # fmt: skip
                seg_video, seg_clean, seg_audio = _segment(g, seg, tmp)
                video = g.add("concat=n=2:v=1:a=0", src_video, seg_video)
                clean = g.add("concat=n=2:v=1:a=0", src_clean, seg_clean)
                audio = g.add("concat=n=2:v=0:a=1", src_audio, seg_audio)
                frames = src_frames + EXTENSION_SECONDS * FPS
            else:
                first = ctx.input_path(job.first_frame) if job.first_frame else None
                end = ctx.input_path(job.last_frame) if job.last_frame else None
                frames = job.duration * FPS
                seg = _Segment(w, h, frames, first, end, **common)
                video, clean, audio = _segment(g, seg, tmp)
            args = _encode_args(video, clean, audio, frames, dest)
            media.run_ffmpeg([*g.inputs, "-filter_complex", g.text(), *args])
        return RenderResult(cost=Price(0.0, "USD"))
