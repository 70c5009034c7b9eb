"""Pictures for the report: how alike two frames are (PSNR, SSIM) and a small JPEG to embed."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

THUMB_WIDTH = 320
_JPEG_QUALITY = 82


def compare_frames(a: Path, b: Path) -> tuple[float, float]:
    """(PSNR in dB, SSIM) between two images; PSNR is `inf` when the pixels are identical.

    PSNR is over RGB at full size. SSIM is over luma (BT.601 weights) after Wang's automatic
    downsampling (average over f x f blocks, f = round(min(h, w) / 256)), with a 7x7 uniform
    window and sample covariances, as scikit-image computes it by default. Frames of different
    sizes are compared at the size of `a`.
    """
    import numpy as np
    from PIL import Image

    with Image.open(a) as ia, Image.open(b) as ib:
        ra = ia.convert("RGB")
        rb = ib.convert("RGB")
    if rb.size != ra.size:
        rb = rb.resize(ra.size, Image.Resampling.BILINEAR)
    diff = np.subtract(np.asarray(ra), np.asarray(rb), dtype=np.int64).ravel()
    sse = int(np.dot(diff, diff))
    psnr = math.inf if sse == 0 else 10 * math.log10(255.0**2 * diff.size / sse)
    # PIL's "L" is the same BT.601 luma, computed in C
    x, y = (np.asarray(im.convert("L"), dtype=np.float64) for im in (ra, rb))
    return psnr, _ssim(_downsample(x), _downsample(y))


def _downsample(luma: Any) -> Any:
    f = max(1, round(min(luma.shape) / 256))
    if f == 1:
        return luma
    h, w = (luma.shape[0] // f) * f, (luma.shape[1] // f) * f
    return luma[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def _box_mean(x: Any, size: int = 7) -> Any:
    """Mean over every size x size window that fits (a 'valid' uniform filter), by integral image."""
    import numpy as np

    c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]) / (size * size)


def _ssim(x: Any, y: Any, size: int = 7) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    if min(x.shape) < size:
        size = min(x.shape)
    norm = size * size / (size * size - 1)
    mx, my = _box_mean(x, size), _box_mean(y, size)
    vx = norm * (_box_mean(x * x, size) - mx * mx)
    vy = norm * (_box_mean(y * y, size) - my * my)
    vxy = norm * (_box_mean(x * y, size) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def thumbnail(path: Path, width: int = THUMB_WIDTH) -> str | None:
    """A JPEG data: URI of the image scaled to `width` pixels wide; None if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None
    rgb.thumbnail((width, max(1, round(width * rgb.height / rgb.width))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=_JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
