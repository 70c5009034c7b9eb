"""Subtitles: read SRT or WebVTT with pysubs2 (a kept parser, not ours) into film-time cues."""

from __future__ import annotations

from pathlib import Path

import pysubs2

from storyboard.edit.timeline import Cue

__all__ = ["read_cues", "write_srt"]


def read_cues(path: Path) -> tuple[Cue, ...]:
    """The cues of an SRT or WebVTT file, in film seconds, in file order.

    Raises:
        pysubs2.exceptions.Pysubs2Error, UnicodeDecodeError, OSError: the file does not parse.
    """
    subs = pysubs2.load(str(path), encoding="utf-8")
    return tuple(Cue(line.start / 1000, line.end / 1000, line.plaintext)
                 for line in subs if not line.is_comment)


def write_srt(cues: tuple[Cue, ...] | list[Cue], out: Path) -> None:
    """Write ``cues`` as SRT (the sidecar beside the film, and the soft track's source)."""
    subs = pysubs2.SSAFile()
    for cue in cues:
        subs.append(pysubs2.SSAEvent(start=round(cue.start * 1000), end=round(cue.end * 1000),
                                     text=cue.text.replace("\n", "\\N")))
    subs.save(str(out), format_="srt", encoding="utf-8")
