"""How each piece of the timeline is cut into parts, and the H.264 setting every encode shares.

A piece's parts (``plan_parts``): a head as long as the join before it, a tail as long as the
join after it, and the body between, cut where a text overlay starts or ends. A clip untrimmed,
unheld, without text and with cuts on both sides is one part, and may be copied (``plan_film``):
its packets go into the film as they are, and then every encoded part, window and title card
is encoded to give the copied clips' very parameter sets, so the film holds one set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storyboard.edit.conform import (
    COLOUR,
    VIDEO_CODEC_ARGS,
    ClipFacts,
    Profile,
    Trim,
    VideoMode,
    copy_blocker,
)
from storyboard.edit.film_setting import match_args, match_colour, plan_video
from storyboard.edit.timeline import ClipPiece, Overlay, Timeline, TitlePiece, frames_of
from storyboard.errors import MediaError, StitchError


@dataclass(frozen=True)
class Part:
    """Frames ``[start, end)`` of a piece, the piece's trim, and the text drawn over the part:
    ``(overlay, first, end)`` in frames of the part; or a run of the clip's whole GOPs, copied."""

    name: str
    start: int
    end: int
    trim: Trim
    texts: tuple[tuple[Overlay, int, int], ...] = ()
    first: int | None = None
    """The clip frame a copied run of whole GOPs starts at (``gops.split_parts``); None: encoded."""

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Setting:
    """The H.264 setting of every segment the stitcher encodes.

    Attributes:
        video_args: the encoder's arguments.
        matrix: swscale's output colour options for pictures made from nothing (title cards).
        tags: a filter setting the frames' colour tags ("": the encoder's own).
        record: the avcC record every encoded segment must have (b"": no copied clip to match).
        owner: the copied clip whose setting is matched, if any.
    """

    video_args: tuple[str, ...] = VIDEO_CODEC_ARGS
    matrix: str = COLOUR[0]
    tags: str = ""
    record: bytes = b""
    owner: ClipFacts | None = None

    def colour_of(self, facts: ClipFacts | MediaError | None) -> tuple[str, str]:
        """How a clip is converted and tagged: to the owner's colours when matching."""
        if self.owner is None or not isinstance(facts, ClipFacts):
            return COLOUR
        return match_colour(facts, self.owner)

    def fields(self) -> dict[str, object]:
        """What of the setting shapes an encoded segment, for its key."""
        return {"video": list(self.video_args), "matrix": self.matrix, "tags": self.tags}


def edges(timeline: Timeline, index: int, fps: int) -> tuple[int, int]:
    """Frames piece ``index`` overlaps the piece before it and the one after it."""
    joins = timeline.joins
    left = joins[index - 1].frames(fps) if index > 0 else 0
    right = joins[index].frames(fps) if index < len(joins) else 0
    return left, right


def untouched(timeline: Timeline, index: int, facts: ClipFacts | MediaError | None,
              fps: int) -> bool:
    """Whether piece ``index`` is a whole clip as it is, with cuts on both sides: one a film of
    cuts would have copied (if ``copy_blocker`` finds nothing against it)."""
    piece = timeline.pieces[index]
    return (isinstance(piece, ClipPiece) and isinstance(facts, ClipFacts)
            and frames_of(piece.in_, fps) == 0 and frames_of(piece.hold, fps) == 0
            and not piece.overlays and edges(timeline, index, fps) == (0, 0)
            and timeline.piece_frames(index, fps) == frames_of(facts.duration, fps))


def plan_parts(timeline: Timeline, index: int, profile: Profile,
               facts: ClipFacts | MediaError | None, *, copy: bool, where: str) -> list[Part]:
    """The parts of piece ``index`` in order.

    Raises:
        StitchError: the clip cannot be read, or the piece is too short for its joins.
    """
    fps = profile.fps
    piece = timeline.pieces[index]
    if isinstance(facts, MediaError):
        raise StitchError(f"stitch: cannot read {where}: {facts.message}") from facts
    if isinstance(piece, TitlePiece):
        trim, texts = Trim(0, frames_of(piece.duration, fps)), []
    else:
        used = frames_of(piece.out - piece.in_, fps)
        trim = Trim(frames_of(piece.in_, fps), used, frames_of(piece.hold, fps), piece.volume)
        if copy and facts is not None:
            return [Part("whole", 0, facts.frames, Trim(0, facts.frames, 0, piece.volume))]
        texts = [(o, frames_of(o.start, fps), frames_of(o.end, fps)) for o in piece.overlays]
    frames = trim.frames
    if frames < 1:
        raise StitchError(f"stitch: {where} has no video frames")
    left, right = edges(timeline, index, fps)
    if frames <= left + right:
        raise StitchError(
            f"stitch: {where} is {frames / fps:.3f} s long, too short for a {left / fps:.3f} s "
            f"transition before it and a {right / fps:.3f} s one after it: use shorter ones")
    cuts = {left, frames - right}
    for _, first, end in texts:
        cuts |= {at for at in (first, end) if left < at < frames - right}
    body = sorted(cuts)
    bounds = [(0, left)] if left else []
    bounds += list(zip(body, body[1:]))
    bounds += [(frames - right, frames)] if right else []
    parts = []
    for number, (start, end) in enumerate(bounds):
        name = ("head" if left and number == 0 else "tail" if right and end == frames
                else "whole" if len(bounds) == 1 else f"body{number}")
        drawn = tuple((o, max(first, start) - start, min(end_, end) - start)
                      for o, first, end_ in texts if first < end and end_ > start and end_ > first)
        parts.append(Part(name, start, end, trim, drawn))
    return parts


@dataclass(frozen=True)
class FilmPlan:
    """How each piece's video is made, the shared setting, and the lines saying why."""

    modes: list[VideoMode | None]
    setting: Setting
    lines: list[str]
    reasons: list[str]
    smart: frozenset[int] = frozenset()
    """The matched clip pieces whose clips have the film's setting: their whole GOPs may be copied
    (``gops.py``)."""


def plan_film(timeline: Timeline, facts: dict[str, ClipFacts | MediaError], profile: Profile,
              *, encode: str | None = None) -> FilmPlan:
    """Choose which clips are copied and the setting everything else is encoded with.

    Whole clips and the other clip pieces whose clips could be copied choose the setting
    together (``plan_video``); a piece of the setting's clip is smart-cut (``FilmPlan.smart``).

    ``encode``, when given, is why every clip must be encoded with the stitcher's own setting.
    """
    fps, pieces = profile.fps, timeline.pieces
    modes: list[VideoMode | None] = [None if isinstance(p, TitlePiece) else "encode"
                                     for p in pieces]
    eligible = [i for i, p in enumerate(pieces) if isinstance(p, ClipPiece)
                and untouched(timeline, i, facts.get(p.sha), fps)]
    partial = [i for i, p in enumerate(pieces) if isinstance(p, ClipPiece) and i not in eligible
               and isinstance(facts.get(p.sha), ClipFacts)
               and copy_blocker(facts[p.sha], profile) is None]  # type: ignore[arg-type]
    candidates = sorted(eligible + partial)
    cut_film = all(j.kind == "cut" for j in timeline.joins) and all(
        isinstance(p, ClipPiece) for p in pieces)
    lines: list[str] = []
    reasons: list[str] = []
    if encode is not None:
        return FilmPlan(modes, Setting(), [f"re-encode the video: {encode}"], [])
    if not candidates:
        return FilmPlan(modes, Setting(), lines, reasons)
    named = [(pieces[i].path.name, facts[pieces[i].sha]) for i in candidates]  # type: ignore[union-attr]
    plan = plan_video(named, profile)

    def renumber(text: str) -> str:  # plan_video counts its clips only; the film counts pieces
        return re.sub(r"\bclip (\d+)\b", lambda m: f"clip {candidates[int(m[1]) - 1] + 1}", text)

    if plan.why_encode is not None:
        if len(eligible) == len(pieces):
            lines.append(f"re-encode the video: {renumber(plan.why_encode)}")
        return FilmPlan(modes, Setting(), lines, reasons)
    owner = next(facts[pieces[i].sha] for i, mode in zip(candidates, plan.modes)  # type: ignore[union-attr]
                 if mode == "copy")
    assert isinstance(owner, ClipFacts)
    need_match = "match" in plan.modes or len(eligible) < len(pieces) or not cut_film
    args: tuple[str, ...] = plan.match_args
    if need_match and not args:
        args, unmatchable = match_args(owner, profile)
        if unmatchable:
            why = f"the copied clips' encoder cannot be matched: {unmatchable}"
            return plan_film(timeline, facts, profile, encode=why)
    smart = set()
    for i, mode, why in zip(candidates, plan.modes, plan.reasons, strict=True):
        if i in partial:
            modes[i] = "match"
            if mode == "copy":
                smart.add(i)
            else:
                lines.append(f"clip {i + 1} ({pieces[i].path.name}): no smart cut: "  # type: ignore[union-attr]
                             f"{renumber(why or '')}")
            continue
        modes[i] = mode
        if why is not None:
            line = f"clip {i + 1} ({pieces[i].path.name}): {renumber(why)}"  # type: ignore[union-attr]
            lines.append(f"re-encode {line}")
            reasons.append(line)
    for i, p in enumerate(pieces):
        if isinstance(p, ClipPiece) and i not in candidates:
            modes[i] = "match"
    matrix, tags = match_colour(owner, owner)
    return FilmPlan(modes, Setting(args, matrix.split(":", 2)[2], tags, plan.setting, owner),
                    lines, reasons, frozenset(smart))


def step_line(timeline: Timeline, index: int, mode: VideoMode | None,
              info: ClipFacts | MediaError | None, fps: int, label: str, missing: int,
              parts: int) -> str:
    """The progress line naming what is about to be made of piece ``index`` (``label``)."""
    piece, count = timeline.pieces[index], len(timeline.pieces)
    some = f" ({missing} of {parts} parts)" if missing < parts else ""
    if isinstance(piece, TitlePiece):
        return f"title {piece.text!r}{some}"
    if mode == "copy":
        return f"copy clip {index + 1}/{count} ({label})"
    whole = (isinstance(info, ClipFacts) and round(piece.in_ * fps) == 0
             and not piece.hold and not piece.overlays
             and round(piece.out * fps) == round(info.duration * fps))
    if whole:
        return f"conform clip {index + 1}/{count} ({label}){some}"
    line = f"trim clip {index + 1} ({label}) {piece.in_:.2f}-{piece.out:.2f} s"
    if piece.hold:
        line += f", hold {piece.hold:.2f} s"
    if piece.overlays:
        line += ", text " + ", ".join(repr(o.text) for o in piece.overlays)
    return line + some


__all__ = ["FilmPlan", "Part", "Setting", "edges", "plan_film", "plan_parts", "step_line",
           "untouched"]
