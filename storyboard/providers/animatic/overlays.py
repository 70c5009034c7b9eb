"""The overlays of a draft: the shot's id, its prompt as a caption and its reference thumbnails."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from storyboard.job import FPS
from storyboard.providers.animatic.graph import FIT, TO_YUV, Graph, filter_value, repeat_runs
from storyboard.providers.animatic.look import OVERLAY_FADE, OVERLAY_MARGIN, Runs

if TYPE_CHECKING:
    from storyboard.providers.animatic.segment import Segment

FONT = Path(__file__).resolve().parents[2] / "fonts" / "DejaVuSans.ttf"
"""Shipped with the package: drawtext finds no font on a bare machine."""
CAPTION_LINES = 3
MAX_THUMBNAILS = 3


def caption_lines(prompt: str, columns: int) -> list[str]:
    """The prompt wrapped to `columns`, cut to CAPTION_LINES lines with an ellipsis."""
    lines = textwrap.wrap(" ".join(prompt.split()), width=max(columns, 10)) or [""]
    if len(lines) > CAPTION_LINES:
        lines = lines[:CAPTION_LINES]
        lines[-1] = lines[-1][: max(columns - 1, 1)].rstrip() + "…"
    return lines


def _fade_alpha(t_end: float) -> str:
    a, b = OVERLAY_MARGIN, t_end - OVERLAY_MARGIN
    return f"max(0,min(1,min((t-{a})/{OVERLAY_FADE},({b}-t)/{OVERLAY_FADE})))"


def overlays(g: Graph, base: str, seg: Segment, runs: Runs, tmp: Path) -> str:
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
            f"scale=w={box_w - 4}:h={box_h - 4}:{FIT}:{TO_YUV},"
            "pad=iw+4:ih+4:2:2:color=white,format=yuva420p",
            f"{g.image(ref)}:v",
        )
        strip = g.add(f"overlay=x=W-w:y={i * (box_h + gap)}:format=auto", strip, thumb)
    strip = g.add(
        f"format=yuva420p,fade=t=in:st={OVERLAY_MARGIN}:d={OVERLAY_FADE}:alpha=1,"
        f"fade=t=out:st={t_end - OVERLAY_MARGIN - OVERLAY_FADE:.6f}:d={OVERLAY_FADE}:alpha=1",
        repeat_runs(g, strip, runs, n),
    )
    return g.add(f"overlay=x=W-w-{margin}:y={margin}:format=yuv420:{window}", out, strip)
