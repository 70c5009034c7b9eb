"""Transitions between pieces: the ffmpeg command of each join's window.

A window is the tail of one piece blended with the head of the next, as long as its join's
overlap, encoded once and memoised under the keys of the two parts it joins (``window_key``).
Picture: ``crossfade`` blends, ``fade`` and ``dip`` pass through black or a colour, and every
other kind is one of ``xfade``'s own transitions by name (``wipeleft``, ``slideup``, ...). Sound
crossfades, or fades out and in around the middle of a fade or a dip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from collections.abc import Sequence

from storyboard.edit.conform import (
    VIDEO_CODEC_ARGS,
    Profile,
    digest,
    frames_for,
    segment_output_args,
)
from storyboard.edit.versions import CONFORM_VERSION

__all__ = ["Transition", "build_window_command", "window_key"]


@dataclass(frozen=True)
class Transition:
    """How consecutive clips join: a cut, a crossfade, or a fade (dip to black) of ``duration`` s.

    Crossfades and fades overlap the clips, so the film is ``(n - 1) * duration`` shorter than its
    clips. The duration is rounded to whole frames of the film (``edge_frames``), at least two, so
    every segment has an exact frame count. A clip is conformed the same wherever it sits in the
    film, so each clip must be longer than twice the overlap, the first and last ones included.
    """

    kind: Literal["cut", "crossfade", "fade"] = "cut"
    duration: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("cut", "crossfade", "fade"):
            raise ValueError(f"unknown transition {self.kind!r}: use cut, crossfade or fade")
        if self.kind == "cut" and self.duration != 0:
            raise ValueError("a cut has no duration")
        if self.kind != "cut" and not self.duration > 0:
            raise ValueError(f"a {self.kind} needs a duration above 0 s, got {self.duration}")

    def edge_frames(self, fps: int) -> int:
        """Frames each join overlaps: the duration rounded to whole frames, 0 for a cut."""
        return 0 if self.kind == "cut" else max(2, frames_for(self.duration, fps))


def window_key(tail_key: str, head_key: str, kind: str, color: str = "") -> str:
    """Key of the window joining the part keyed ``tail_key`` to the part keyed ``head_key``.

    The part keys carry both clips' hashes, trims, the profile, the overlap in frames and the
    H.264 setting; ``color`` is a dip's.
    """
    fields = {"v": CONFORM_VERSION, "step": "window", "tail": tail_key, "head": head_key,
              "kind": kind}
    if color:
        fields["color"] = color
    return digest(fields)


def build_window_command(
    tail: Path, head: Path, out: Path, *, profile: Profile, kind: str, edge: int,
    color: str = "#000000", video_args: Sequence[str] = VIDEO_CODEC_ARGS, tags: str = "",
) -> list[str]:
    """ffmpeg arguments that join ``tail`` to ``head`` (both ``edge`` frames long) into ``out``.

    A crossfade (and every ``xfade`` transition) blends picture and sound over the whole window.
    A fade or dip shows the first half of ``tail`` fading to black (or ``color``) and silence,
    then the second half of ``head`` fading in (``xfade``'s ``fadeblack`` is lopsided: out in a
    fifth of the time, in over the rest). Either way the window has exactly ``edge`` frames and
    ``profile.samples_at(edge)`` samples; ``tags`` is a filter setting the frames' colour tags.
    """
    samples = profile.samples_at(edge)
    finish = f"format={profile.pix_fmt}" + (f",{tags}" if tags else "")
    if kind in ("fade", "dip"):
        half = edge // 2
        cut = profile.samples_at(half)
        shade = "black" if kind == "fade" else "0x" + color.lstrip("#")
        graph = [
            f"[0:v]trim=end_frame={half},fade=t=out:s=0:n={half}:color={shade}[v0]",
            f"[1:v]trim=start_frame={half},setpts=PTS-STARTPTS,"
            f"fade=t=in:s=0:n={edge - half}:color={shade}[v1]",
            f"[0:a]atrim=end_sample={cut},afade=t=out:ss=0:ns={cut}[a0]",
            f"[1:a]atrim=start_sample={cut}:end_sample={samples},asetpts=PTS-STARTPTS,"
            f"afade=t=in:ss=0:ns={samples - cut}[a1]",
            f"[v0][a0][v1][a1]concat=n=2:v=1:a=1[vj][a];[vj]{finish}[v]",
        ]
    elif kind != "cut" and kind.isidentifier():
        name = "fade" if kind == "crossfade" else kind
        graph = [
            f"[0:v][1:v]xfade=transition={name}:duration={edge / profile.fps:.9f}:offset=0,"
            f"{finish},tpad=stop_mode=clone:stop=-1,trim=end_frame={edge},"
            "setpts=PTS-STARTPTS[v]",
            f"[0:a]afade=t=out:ss=0:ns={samples}[a0]",
            f"[1:a]afade=t=in:ss=0:ns={samples}[a1]",
            "[a0][a1]amix=inputs=2:duration=longest:normalize=0,"
            f"aformat=sample_fmts=s16,atrim=end_sample={samples}[a]",
        ]
    else:
        raise ValueError(f"no window for a {kind!r}")
    return ["-y", "-i", str(tail), "-i", str(head), "-filter_complex", ";".join(graph),
            *segment_output_args("[v]", "[a]", out, profile, video_args)]
