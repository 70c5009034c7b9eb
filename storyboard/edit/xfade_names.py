"""The transitions an ``[edit]`` may name: ours, and the ones ffmpeg's ``xfade`` filter draws.

Kept as data (copied from ``ffmpeg -h filter=xfade`` of the bundled ffmpeg 9.0) so loading a
storyboard never runs ffmpeg. ``custom`` is left out (it takes an expression, which a storyboard
must not carry) and so is xfade's own ``fade``, which is our ``crossfade``.
"""

from __future__ import annotations

OWN = ("cut", "crossfade", "fade", "dip")
"""cut; crossfade; fade (out to black, then in); dip (to a colour and back)."""

XFADE = (
    "wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown",
    "circlecrop", "rectcrop", "distance", "fadeblack", "fadewhite", "radial", "smoothleft", "smoothright",
    "smoothup", "smoothdown", "circleopen", "circleclose", "vertopen", "vertclose", "horzopen", "horzclose",
    "dissolve", "pixelize", "diagtl", "diagtr", "diagbl", "diagbr", "hlslice", "hrslice", "vuslice",
    "vdslice", "hblur", "fadegrays", "wipetl", "wipetr", "wipebl", "wipebr", "squeezeh", "squeezev",
    "zoomin", "fadefast", "fadeslow", "hlwind", "hrwind", "vuwind", "vdwind", "coverleft", "coverright",
    "coverup", "coverdown", "revealleft", "revealright", "revealup", "revealdown",
)
"""xfade's named transitions, passed to it as ``transition=<name>``."""

KINDS = OWN + XFADE
