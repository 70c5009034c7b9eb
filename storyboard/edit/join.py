"""How two pieces of the film meet, and seconds as whole frames.

Apart from the timeline (storyboard.edit.timeline) because loading a board checks its joins
(storyboard.edit.rules) and need not build the timeline's classes to do so.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Join", "frames_of"]


def frames_of(seconds: float, fps: int) -> int:
    """Whole frames nearest to ``seconds`` (half a frame rounds up)."""
    return int(seconds * fps + 0.5)


@dataclass(frozen=True)
class Join:
    """How one piece joins the next: ``cut``, ``crossfade``, ``fade`` (through black), ``dip``
    (to ``color``), or one of ffmpeg's ``xfade`` transitions by name (``wipeleft``, ...)."""

    kind: str = "cut"
    duration: float = 0.0
    """Seconds the two pieces overlap; 0 for a cut."""
    color: str = "#000000"
    """The colour a ``dip`` passes through."""

    def frames(self, fps: int) -> int:
        """Frames of overlap: 0 for a cut, else the duration in whole frames, at least 2."""
        return 0 if self.kind == "cut" else max(2, frames_of(self.duration, fps))
