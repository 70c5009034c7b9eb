"""Test clips shaped like a provider's: a moving test pattern and a tone, encoded as asked.

The stitcher's B-frame and smart-cut tests each render clips of their own setting (x264 High with
B-frames, another encoder setting, an open GOP) with their own burst of sound to check A/V by.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

RATE = 48000


def render_clip(path: Path, hue: int, seconds: float, burst: str, video_args: tuple[str, ...],
                *extra: str) -> str:
    """Render `seconds` of testsrc2 at 320x180, 24 fps, turned by `hue`, with the stereo sound
    `burst` (an aevalsrc expression) in AAC 48 kHz 192k; the file's sha256."""
    subprocess.run([
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=s=320x180:r=24:d={seconds},hue=h={hue}",
        "-f", "lavfi", "-i", f"aevalsrc={burst}|{burst}:s={RATE}:d={seconds}",
        *video_args, *extra, "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "192k", "-ar", str(RATE), "-ac", "2", "-shortest", str(path),
    ], check=True)  # fmt: skip
    return hashlib.sha256(path.read_bytes()).hexdigest()


def left_channel(path: Path) -> np.ndarray:
    """A film's left channel from its first presented sample (the AAC priming dropped)."""
    with av.open(str(path)) as container:
        decoded = list(container.decode(audio=0))
    samples = np.concatenate([f.to_ndarray()[0] for f in decoded])
    start = round(decoded[0].pts * decoded[0].time_base * RATE)
    return samples[-start:] if start < 0 else samples
