"""What the report shows, gathered from the plan, the cache and the lock: a card per shot, each cut
of the film scored, and the film itself. No HTML here (see `page`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from storyboard.errors import MediaError
from storyboard.estimate import format_price
from storyboard.job import EXTENSION_SECONDS, Price
from storyboard.model import Asset, FrameInput, ImageInput, Shot
from storyboard.plan import CACHED, REMOTE, RUN, WAITS
from storyboard.plan_view import INVALID
from storyboard.report.frames import compare_frames

if TYPE_CHECKING:
    from storyboard.build import Project
    from storyboard.executor import BuildReport
    from storyboard.plan import Resolver, Step
    from storyboard.plan_view import Row

PSNR_FLAG = 20.0
"""Cuts below this many dB are flagged. A hand-off through an encoder scores above 40 dB."""

SSIM_FLAG = 0.80
"""Cuts whose SSIM is below this are flagged too: SSIM sees structure, PSNR sees colour.

SSIM alone forgives a change of flat colour (blue to red fields score 0.98); PSNR alone
forgives moved detail at similar brightness. Either one low is a visible jump.
"""


@dataclass(frozen=True)
class Cut:
    """The join between two consecutive clips of the film, and how alike its two frames are.

    Attributes:
        before: the outgoing shot.
        after: the incoming shot.
        transition: "cut", "crossfade" or "fade", from `[edit]`.
        handed_off: the incoming shot starts on the outgoing shot's exact last frame
            (`continues`, or `first_frame = { shot = before, frame = "last" }`).
        psnr: dB, `inf` for identical pixels; None when either frame is not built.
        ssim: 0..1; None when either frame is not built.
    """

    kind: ClassVar[str] = "cut"
    before: str
    after: str
    transition: str
    handed_off: bool
    psnr: float | None = None
    ssim: float | None = None

    @property
    def scored(self) -> bool:
        return self.psnr is not None and self.ssim is not None

    @property
    def identical(self) -> bool:
        return self.psnr is not None and math.isinf(self.psnr)

    @property
    def flagged(self) -> bool:
        if not self.scored or self.identical:
            return False
        return self.psnr < PSNR_FLAG or self.ssim < SSIM_FLAG  # type: ignore[operator]

    @property
    def verdict(self) -> str:
        """"ok" (a hand-off that joins), "bad" (a hand-off that does not) or "cut" (no hand-off)."""
        if not self.handed_off:
            return "cut"
        return "bad" if self.flagged else "ok"


@dataclass
class ShotCard:
    """What the page shows for one shot."""

    kind: ClassVar[str] = "shot"
    id: str
    number: int | None
    """Position in the film, from 1; None for a shot not in it."""
    prompt: str
    negative_prompt: str | None
    seed: int | None
    take: int
    provider: str
    model: str
    resolution: str
    aspect_ratio: str
    status: str
    reason: str
    inputs: list[str]
    cost: str = ""
    price: Price | None = None
    """What the shot cost, when it is cached and its provider said."""
    first: str | None = None
    """The first frame as a data: URI, or None for a placeholder."""
    last: str | None = None
    stale: bool = False
    """The frames are the previous take's, from the lock."""
    placeholder: str = "not built yet"
    note: str = ""
    created: str | None = None
    length: str = ""
    clip: str | None = None
    """The clip in the cache, as a URL relative to the page; None when it is not cached."""
    start: float | None = None
    """Seconds into the film where the shot starts; None when not in it or not all built."""


@dataclass
class FilmCard:
    """The film: where it is relative to the page, and whether it is current."""

    src: str | None
    name: str
    status: str
    duration: float | None = None
    megabytes: float | None = None
    poster: str | None = None


STATUS = {CACHED: "cached", REMOTE: "remote", INVALID: "invalid", RUN: "to run", WAITS: "to run"}
"""The plan's statuses as the page groups them."""


def shot_card(project: Project, resolver: Resolver, step: Step, row: Row, build: BuildReport | None) -> ShotCard:
    """The shot as the plan (and the build, if one just ran) sees it; frames are cache hashes still."""
    shot = project.board.shots[step.shot]
    status, reason = STATUS.get(row.status, "to run"), row.reason
    outcome = build.shots.get(shot.id) if build is not None else None
    if outcome is not None and outcome.outcome.value in ("failed", "skipped"):
        status, reason = outcome.outcome.value, outcome.error or reason
    elif status == "to run" and row.status != "uncertain" and step.key and project.cache.journal(step.key).read():
        reason += "; a provider job is in flight and resumes on the next build"
    card = ShotCard(
        id=shot.id, number=None, prompt=shot.prompt, negative_prompt=shot.negative_prompt, seed=shot.seed,
        take=shot.take, provider=shot.provider, model=shot.model, resolution=shot.resolution,
        aspect_ratio=shot.aspect_ratio, status=status, reason=reason, inputs=_inputs(shot),
    )
    entry = resolver.outputs.get(shot.id) if row.status == CACHED else None
    locked = project.lock.shots.get(shot.id) or {}
    if entry is not None:  # hashes for now; make_report swaps in the thumbnails
        card.first, card.last = entry["outputs"]["first"], entry["outputs"]["last"]
        if entry.get("cost") is not None:
            card.price = Price(entry["cost"], entry.get("unit") or "USD")
        card.cost = format_price(card.price) if card.price else "unknown"
        card.created = entry.get("created")
        card.length = f"{entry['meta']['duration']:.2f} s" if "duration" in entry.get("meta", {}) else ""
    else:
        if row.status == REMOTE:
            card.placeholder = "in the remote cache: the next build downloads it"
        elif all(project.cache.has_object(locked.get(k, "")) for k in ("first", "last")):
            card.first, card.last, card.stale = locked["first"], locked["last"], True
        card.cost = "est. " + format_price(None if row.cost is None else Price(row.cost, row.unit or "USD"))
    if not card.length:
        extended = f"the clip of '{shot.extends}' + {EXTENSION_SECONDS} s"
        card.length = extended if shot.extends else f"{shot.duration} s"
    return card


def locate_in_film(project: Project, resolver: Resolver) -> list[float | None]:
    """Where each clip of the sequence starts in the film, in seconds; None after an unbuilt one.

    When every clip is built, as the timeline places them (trims, holds, titles, each join's
    overlap); before that, clips whole with `[edit]`'s one transition, in whole frames.
    """
    from storyboard.edit.timeline import Join
    from storyboard.job import FPS

    if (found_in_timeline := _timeline_starts(project, resolver)) is not None:
        return found_in_timeline

    t = project.board.edit.transition
    edge = Join(t.kind, 0.0 if t.kind == "cut" else t.duration).frames(FPS)
    found: list[float | None] = []
    frame: int | None = 0
    for shot_id in project.board.sequence:
        found.append(None if frame is None else frame / FPS)
        meta = (resolver.outputs.get(shot_id) or {}).get("meta") or {}
        frames = meta.get("frames") or (round(meta["duration"] * FPS) if "duration" in meta else None)
        frame = None if frame is None or frames is None else frame + frames - edge
    return found


def _timeline_starts(project: Project, resolver: Resolver) -> list[float | None] | None:
    """Each clip's start in the film as the stitcher lays out the timeline, or None when a clip is
    not built (or not in the cache)."""
    from storyboard.edit.film import film_timeline
    from storyboard.edit.timeline import ClipPiece
    from storyboard.errors import CacheError
    from storyboard.job import FPS

    board = project.board
    if not all(s in resolver.outputs for s in board.sequence):
        return None
    try:
        timeline = film_timeline(board, project.cache, resolver.outputs)
    except CacheError:
        return None
    starts = [start / FPS for piece, start in zip(timeline.pieces, timeline.starts(FPS))
              if isinstance(piece, ClipPiece)]
    return starts if len(starts) == len(board.sequence) else None


def place(card: ShotCard, number: int, start: float | None) -> ShotCard:
    """The card at its place in the film; a shot the sequence plays again gets a copy there."""
    if card.number is not None:
        return replace(card, number=number, start=start)
    card.number, card.start = number, start
    return card


def clip_url(project: Project, resolver: Resolver, shot_id: str, out: Path) -> str | None:
    """The shot's clip in the cache, relative to the page at `out`; None when it is not cached."""
    entry = resolver.outputs.get(shot_id)
    if entry is None or not project.cache.has_object(entry["outputs"]["clip"]):
        return None
    path = project.cache.object_path(entry["outputs"]["clip"])
    return quote(Path(os.path.relpath(path.resolve(), out.resolve().parent)).as_posix())


def _inputs(shot: Shot) -> list[str]:
    def label(image: ImageInput) -> str:
        if isinstance(image, Asset):
            return f"asset '{image.name}'" if image.name else f"image {image.path or image.url}"
        assert isinstance(image, FrameInput)
        which = f"{image.frame} frame" if isinstance(image.frame, str) else f"frame at {image.frame:g} s"
        return f"the {which} of '{image.shot}'"

    lines = []
    if shot.continues:
        lines.append(f"starts on the exact last frame of '{shot.continues}'")
    elif shot.first_frame is not None:
        lines.append(f"starts on {label(shot.first_frame)}")
    if shot.last_frame is not None:
        lines.append(f"ends on {label(shot.last_frame)}")
    if shot.extends:
        lines.append(f"extends the clip of '{shot.extends}'")
    if shot.references:
        lines.append("references: " + ", ".join(label(r) for r in shot.references))
    return lines


def judge_cut(project: Project, resolver: Resolver, before: str, after: str) -> Cut:
    """The join from `before` to `after`, scored when both are built."""
    board = project.board
    incoming = board.shots[after]
    while incoming.extends:  # an extension's clip opens with its source's clip
        incoming = board.shots[incoming.extends]
    first = incoming.first_frame
    handed_off = isinstance(first, FrameInput) and first.shot == before and first.frame == "last"
    cut = Cut(before, after, board.edit.transition.kind, handed_off)
    a, b = resolver.outputs.get(before), resolver.outputs.get(after)
    if a is None or b is None:
        return cut
    try:
        psnr, ssim = compare_frames(project.cache.object_path(a["outputs"]["last"]),
                                    project.cache.object_path(b["outputs"]["first"]))
    except OSError:
        return cut
    return Cut(before, after, cut.transition, handed_off, psnr, ssim)


def film_card(project: Project, resolver: Resolver, out: Path) -> FilmCard:
    """Where the film is relative to the page at `out`, and whether it is the current edit's."""
    from storyboard.media import probe

    board, lock = project.board, project.lock
    path = board.output
    if not path.is_file():
        return FilmCard(None, path.name, "not built yet: run `storyboard build` to stitch it")
    rel = Path(os.path.relpath(path.resolve(), out.resolve().parent)).as_posix()
    card = FilmCard(quote(rel), path.name, "current", megabytes=path.stat().st_size / 1e6)
    try:
        card.duration = probe(path).duration
    except MediaError:
        card.status = "cannot be decoded: run `storyboard build` to stitch it again"
        return card
    current = (all(s in resolver.outputs for s in board.sequence)
               and lock.film.get("key") == _film_key(board, project.cache, resolver.outputs)
               and project.cache.digest(path) == lock.film.get("sha"))
    if not current:
        card.status = "out of date: shots changed since it was stitched; run `storyboard build`"
    return card


def _film_key(board: Any, cache: Any, outputs: Any) -> str | None:
    """The key the film of these clips and this edit has, or None when a clip is not in the cache."""
    from storyboard.edit.film import film_key, film_timeline
    from storyboard.errors import CacheError

    try:
        return film_key(board, film_timeline(board, cache, outputs))
    except CacheError:
        return None
