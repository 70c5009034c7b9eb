"""Subtitles: read SRT or WebVTT with pysubs2 (a kept parser, not ours) into film-time cues.

A subtitle file is part of an untrusted storyboard, so it is bounded (``MAX_BYTES``), must be
SRT or WebVTT by content, and must parse whole: pysubs2 is lenient and drops a cue whose timing
line is broken (or folds it into the text of the cue before), so every line meant as a timing
line (an arrow after a time) must be one, or it is reported with its line in the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pysubs2

from storyboard.edit.timeline import Cue
from storyboard.errors import StoryboardFileError

__all__ = ["MAX_BYTES", "SubtitleError", "cues_past", "read_cues", "write_srt"]

MAX_BYTES = 4 * 1024 * 1024
"""The largest subtitle file read: a feature film's SRT is about 100 KB."""

FORMATS = {"srt": "SRT", "vtt": "WebVTT"}

_EXAMPLE = "00:00:01,000 --> 00:00:02,500 (SRT) or 00:00:01.000 --> 00:00:02.500 (WebVTT)"

_TIMING = re.compile(r"-->|^\s*\d[\d:.,]*\s*-+>")
"""A line meant as a timing line: it has an arrow, or begins with a time and a short arrow."""
_STAMP = r"(?:\d+:)?\d{1,2}:\d{1,2}[,.]\d{1,3}"
_TIMING_LINE = re.compile(rf"^\s*{_STAMP}\s*-->\s*{_STAMP}(?:\s.*)?$")
"""A cue's timing line, SRT (``00:00:01,000``) or WebVTT (``00:01.000``, then cue settings)."""


class SubtitleError(StoryboardFileError):
    """A subtitle file is missing, too large, not SRT/WebVTT, or does not parse (exit 2)."""


def read_cues(path: Path) -> tuple[Cue, ...]:
    """The cues of an SRT or WebVTT file, in film seconds, in file order.

    Raises:
        SubtitleError: the file cannot be read, is over ``MAX_BYTES``, is not UTF-8 SRT or
            WebVTT, has no cue, has a timing line that does not parse or a cue that ends before
            it starts; the message names the file and, where it can, the line or the cue.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SubtitleError(f"{path}: the subtitle file is {size / 1e6:.1f} MB; at most "
                                f"{MAX_BYTES // (1024 * 1024)} MB is read (SRT or WebVTT text)")
        raw = path.read_bytes()
    except OSError as exc:
        raise SubtitleError(f"{path}: cannot read the subtitle file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubtitleError(f"{path}: not UTF-8 text (byte {exc.start}); save the subtitles as UTF-8 "
                            "SRT or WebVTT") from None
    try:
        subs = pysubs2.SSAFile.from_string(_without_vtt_blocks(text))
    except (pysubs2.exceptions.Pysubs2Error, ValueError, KeyError) as exc:
        raise SubtitleError(f"{path}: not SRT or WebVTT subtitles ({exc}); an SRT cue is a number, a "
                            "line '00:00:01,000 --> 00:00:02,500' and its text") from None
    if subs.format not in FORMATS:
        raise SubtitleError(f"{path}: these are {subs.format.upper()} subtitles; give SRT or WebVTT")
    for number, line in enumerate(text.splitlines(), 1):
        if _TIMING.search(line) and not _TIMING_LINE.match(line):
            raise SubtitleError(f"{path}:{number}: the timing line '{line.strip()}' does not parse; "
                                f"write it as {_EXAMPLE}")
    events = [line for line in subs if not line.is_comment]
    if not events:
        raise SubtitleError(f"{path}: no subtitle cue in the file")
    cues = []
    for number, line in enumerate(events, 1):
        stray = next((part for part in line.plaintext.splitlines() if _TIMING.search(part)), None)
        if stray is not None:
            raise SubtitleError(f"{path}:{_line_of(text, stray)}: the timing line '{stray.strip()}' does "
                                f"not parse; write it as {_EXAMPLE}")
        if line.end <= line.start:
            raise SubtitleError(f"{path}: cue {number} ('{_short(line.plaintext)}') ends at "
                                f"{_clock(line.end)}, not after it starts at {_clock(line.start)}")
        cues.append(Cue(line.start / 1000, line.end / 1000, line.plaintext))
    return tuple(cues)


def cues_past(cues: Sequence[Cue], seconds: float) -> tuple[Cue, ...]:
    """The cues that end after the film's ``seconds`` (each is a warning: it is cut or never shown)."""
    return tuple(cue for cue in cues if cue.end > seconds + 1e-9)


def write_srt(cues: tuple[Cue, ...] | list[Cue], out: Path) -> None:
    """Write ``cues`` as SRT (the sidecar beside the film, and the soft track's source)."""
    subs = pysubs2.SSAFile()
    for cue in cues:
        subs.append(pysubs2.SSAEvent(start=round(cue.start * 1000), end=round(cue.end * 1000),
                                     text=cue.text.replace("\n", "\\N")))
    subs.save(str(out), format_="srt", encoding="utf-8")


def _without_vtt_blocks(text: str) -> str:
    """A WebVTT file without its NOTE, STYLE and REGION blocks and cue identifiers.

    pysubs2 reads a WebVTT cue as an SRT one, so either would end up in the text of the cue
    before; other files are returned as they are.
    """
    if not text.lstrip().startswith("WEBVTT"):
        return text
    kept = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        lines = block.strip("\n").split("\n")
        if lines[0].split(" ")[0] in ("NOTE", "STYLE", "REGION"):
            continue
        if len(lines) > 1 and "-->" not in lines[0] and "-->" in lines[1]:
            lines = lines[1:]
        kept.append("\n".join(lines))
    return "\n\n".join(kept) + "\n"


def _line_of(text: str, wanted: str) -> int:
    """The 1-based line of ``text`` holding ``wanted`` (its first occurrence)."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() == wanted.strip():
            return number
    return 1


def _clock(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _short(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
