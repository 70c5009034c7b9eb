"""What a seed and a take decide (``Look``), and the camera's push-in as runs of identical frames."""

from __future__ import annotations

import colorsys
import hashlib
import math
from dataclasses import dataclass

from storyboard.job import FPS

OVERLAY_MARGIN = 0.5
"""Seconds at each end kept free of overlays, so the handed-off frames are clean pictures."""
OVERLAY_FADE = 0.25
_GOLDEN = 0.381966
"""2 - phi, in turns: hue steps of this size spread takes evenly round the colour wheel."""
_FOCUS_CORNERS = ((0.15, 0.2), (0.75, 0.2), (0.75, 0.7), (0.15, 0.7))
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
