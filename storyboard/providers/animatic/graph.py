"""The ffmpeg filter graph the animatic renders with: inputs, chains, stills and the push-in."""

from __future__ import annotations

import re
from pathlib import Path

from storyboard.job import FPS
from storyboard.providers.animatic.look import Look, Runs
from storyboard.sniff import sniff

# bitexact: swscale's SIMD paths may otherwise round differently from one CPU to another.
SWS = "accurate_rnd+full_chroma_int+bitexact"
TO_YUV = f"out_color_matrix=bt709:out_range=tv:flags=bicubic+{SWS}"
FIT = "force_original_aspect_ratio=decrease:force_divisible_by=2"
_FILTER_SPECIALS = re.compile(r"([\\'\[\],;])")


def filter_value(value: str) -> str:
    """Quote `value` (a path) as an ffmpeg filtergraph option value, whatever it holds.

    Two parsers unquote it in turn: the graph parser (backslashes) and then the option
    parser (single quotes).
    """
    return _FILTER_SPECIALS.sub(r"\\\1", "'" + value.replace("'", "'\\''") + "'")


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


class Graph:
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
        return f"sws_flags=bicubic+{SWS};" + ";".join(self.chains)


def still(g: Graph, path: Path, w: int, h: int) -> str:
    """One frame: a picture letterboxed into w x h, as BT.709 yuv420p."""
    return g.add(
        f"scale={w}:{h}:{FIT}:{TO_YUV},pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p",
        f"{g.image(path)}:v",
    )


def background(g: Graph, look: Look, w: int, h: int) -> str:
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
        f"trim=end_frame=1,scale={TO_YUV},format=yuv420p{boxes}"
    )


def repeat_runs(g: Graph, still: str, runs: Runs, frames: int) -> str:
    """One copy of a one-frame stream per run, stamped with the run's first frame number."""
    # A sentinel frame at `frames` closes the last run; it is trimmed after `fps`.
    starts = [start for _, start in runs] + [frames]
    return g.add(
        f"loop=loop={len(runs)}:size=1:start=0,settb=1/{FPS},"
        f"setpts='{_lookup('N', list(range(len(starts))), starts)}'",
        still,
    )


def push_in(look: Look, runs: Runs, w: int, h: int, frames: int) -> str:
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
        f":eval=frame:flags=bilinear+{SWS},"
        f"crop={w}:{h}:x='{_lookup(at, starts, xs)}':y='{_lookup(at, starts, ys)}'"
    )
