"""Title cards and text over the picture, drawn with the packaged DejaVu Sans (never a system font).

A title card is a piece of its own: its text centred on a colour or on an image scaled and padded
to the film's size, with silence under it. Text over a clip (``[[edit.text]]``, and burned
subtitles) is ``drawtext`` over the frames of its span only: the stitcher cuts the clip's body
where a span starts and ends, so only those parts carry the text and are keyed by it.

The text reaches ffmpeg through a file (``textfile=``, ``expansion=none``), so no character of a
storyboard's text can change the filter graph or be read as one of drawtext's expansions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from storyboard.edit.conform import Profile, segment_output_args
from storyboard.edit.timeline import Overlay, TitlePiece

__all__ = ["FONT", "build_title_command", "drawtext", "filter_value", "overlay_text", "write_text"]

FONT = Path(__file__).resolve().parent.parent / "fonts" / "DejaVuSans.ttf"
"""The one font every card and overlay is drawn with, shipped with the package."""

_Y = {
    "lower-third": "h*3/4-th/2",
    "center": "(h-th)/2",
    "top": "h/12",
}


def filter_value(value: str) -> str:
    """``value`` escaped for a filter option inside a filter graph (both levels of quoting)."""
    level1 = value.replace("\\", "\\\\").replace("'", "\\'").replace(":", "\\:")
    return "".join("\\" + c if c in "\\'[],;" else c for c in level1)


def write_text(text: str, folder: Path, name: str) -> Path:
    """Write ``text`` to ``folder/name`` for ``textfile=`` and return its path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def drawtext(text_file: Path, profile: Profile, *, position: str = "center", style: str = "text",
             size: int | None = None, frames: tuple[int, int] | None = None) -> str:
    """A ``drawtext`` filter drawing the text of ``text_file``, white with a dark outline.

    ``style="subtitle"`` draws it in a translucent box near the bottom; ``frames`` limits it to
    frames ``[first, end)`` of the stream it filters (default: every frame).
    """
    height = profile.height
    size = size or max(12, height // (20 if style == "subtitle" else 16))
    y = "h-th-h/14" if style == "subtitle" else _Y[position]
    options = [
        f"fontfile={filter_value(str(FONT))}", f"textfile={filter_value(str(text_file))}",
        "expansion=none", f"fontsize={size}", "fontcolor=white", "x=(w-tw)/2", f"y={y}",
        "text_align=center", "line_spacing=4",
    ]
    if style == "subtitle":
        options += ["box=1", "boxcolor=black@0.6", f"boxborderw={max(4, size // 3)}"]
    else:
        options += [f"borderw={max(1, size // 16)}", "bordercolor=black@0.8"]
    if frames is not None:
        options.append(f"enable=between(n\\,{frames[0]}\\,{frames[1] - 1})")
    return "drawtext=" + ":".join(options)


def overlay_text(overlay: Overlay, text_file: Path, profile: Profile,
                 frames: tuple[int, int] | None = None) -> str:
    """The ``drawtext`` filter of one overlay (see ``drawtext``)."""
    return drawtext(text_file, profile, position=overlay.position, style=overlay.style,
                    frames=frames)


def build_title_command(
    title: TitlePiece,
    outs: dict[str, Path],
    *,
    profile: Profile,
    bounds: dict[str, tuple[int, int]],
    text_file: Path,
    video_args: Sequence[str],
    matrix: str,
    tags: str = "",
) -> list[str]:
    """ffmpeg arguments that render the title card's parts ``outs`` (ranges in ``bounds``).

    Args:
        title: the card: text, length, background colour or image.
        outs: one output path per part to make.
        profile: the film's format.
        bounds: each part's frame range within the card.
        text_file: the card's text, written with ``write_text``.
        video_args: the film's H.264 setting.
        matrix: swscale's output colour options (``out_color_matrix=bt709:out_range=tv``).
        tags: a filter setting the frames' colour tags, or "".
    """
    p = profile
    frames = max(end for _, end in bounds.values())
    if title.image is not None:
        source = ["-loop", "1", "-framerate", str(p.fps), "-i", str(title.image)]
        picture = (f"[0:v:0]scale={p.width}:{p.height}:force_original_aspect_ratio=decrease"
                   f":force_divisible_by=2:{matrix}:flags=bicubic,"
                   f"pad={p.width}:{p.height}:(ow-iw)/2:(oh-ih)/2:color=black,")
    else:
        colour = title.background.lstrip("#")
        source = ["-f", "lavfi", "-i", f"color=c=0x{colour}:s={p.width}x{p.height}:r={p.fps}"]
        picture = f"[0:v:0]scale={p.width}:{p.height}:{matrix}:flags=bicubic,"
    text = drawtext(text_file, profile, size=max(16, p.height // 10))
    names = list(outs)
    graph = [
        f"{picture}setsar=1,fps={p.fps},trim=end_frame={frames},setpts=PTS-STARTPTS,{text},"
        f"format={p.pix_fmt}" + (f",{tags}" if tags else "")
        + f",split={len(names)}" + "".join(f"[vs_{n}]" for n in names),
        f"anullsrc=r={p.sample_rate}:cl={p.channel_layout},aformat=sample_fmts=s16,"
        f"atrim=end_sample={p.samples_at(frames)},asplit={len(names)}"
        + "".join(f"[as_{n}]" for n in names),
    ]
    for name in names:
        start, end = bounds[name]
        graph.append(f"[vs_{name}]trim=start_frame={start}:end_frame={end},"
                     f"setpts=PTS-STARTPTS[v_{name}]")
        graph.append(f"[as_{name}]atrim=start_sample={p.samples_at(start)}"
                     f":end_sample={p.samples_at(end)},asetpts=PTS-STARTPTS[a_{name}]")
    argv = ["-y", *source, "-filter_complex", ";".join(graph)]
    for name in names:
        argv += segment_output_args(f"[v_{name}]", f"[a_{name}]", outs[name], profile, video_args)
    return argv

