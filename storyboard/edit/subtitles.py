"""Subtitles: read SRT or WebVTT with pysubs2 (a kept parser, not ours) into film-time cues."""

from __future__ import annotations

from pathlib import Path

import pysubs2

from storyboard.edit.timeline import Cue

__all__ = ["read_cues"]


def read_cues(path: Path) -> tuple[Cue, ...]:
    """The cues of an SRT or WebVTT file, in film seconds, in file order.

    Raises:
        pysubs2.exceptions.Pysubs2Error, UnicodeDecodeError, OSError: the file does not parse.
    """
    subs = pysubs2.load(str(path), encoding="utf-8")
    return tuple(Cue(line.start / 1000, line.end / 1000, line.plaintext)
                 for line in subs if not line.is_comment)
